"""Per-scale localizer tables (memlab.iar.localizers.scales): on a next-scale lookup memorizer (unit k * L + i
of block.0.mlp fires only at position i of image k) every method puts each target's lookup unit at the scale
of its position; the per-scale rows aggregate to the whole-unit score where that is exact (max for the
activation statistics, sum for the gradient methods); zero-out by scale is the NLL increase of zeroing the
unit at that scale only; with one scale (raster) the by-scale code gives the whole table."""

import numpy as np
import pandas as pd
import pytest
import torch

from memlab.errors import UsageError
from memlab.iar.config import LocalizerConfig
from memlab.iar.evalsets import EvalSets, choose
from memlab.iar.fake import lookup_memorizer
from memlab.iar.localizers import REGISTRY
from memlab.iar.localizers.common import Inputs, gated, loglik_B, position_scales
from memlab.iar.localizers.scales import BY_SCALE, RELATION, localize_scales, localize_scales_into
from memlab.iar.pipeline import RunData

from tiny_models import V as TINY_V, tiny_model  # noqa: E402

torch.set_num_threads(1)
K, L, V, NT = 8, 21, 8, 4  # images, tokens (scales 1, 2, 4), vocabulary, targets
FAST = LocalizerConfig(steps=60)


@pytest.fixture(scope="module")
def lookup():
    """(next-scale lookup memorizer, Inputs with T = images 0..3); tokens given directly (no tokenizer)."""
    g = torch.Generator().manual_seed(0)
    tokens = torch.stack([torch.randperm(V, generator=g)[:K] for _ in range(L)], 1)
    heldout = torch.randint(0, V, (48, L), generator=g)
    y, yh = torch.randint(0, 2, (K,), generator=g), torch.randint(0, 2, (48,), generator=g)
    model = lookup_memorizer(tokens, arch="next-scale", n_filler=64)
    ids = np.array([f"img{i}" for i in range(K)])
    data = RunData(torch.zeros(K, 3, 4, 4), y, ids, np.ones(K, int), torch.zeros(48, 3, 4, 4), yh)
    sets = choose(ids, np.ones(K, int), list(ids), 48, targets=list(ids[:NT]))
    return model, Inputs(data, sets, tokens, heldout, sets.rows(ids, "target"))


def _pivot(table: pd.DataFrame) -> pd.DataFrame:
    return table.pivot_table(index=["layer", "unit"], columns="scale", values="score")


@pytest.mark.parametrize("name", [n for n in BY_SCALE if n != "unitmem"])
def test_every_method_puts_a_lookup_unit_at_the_scale_of_its_position(lookup, name):
    model, inp = lookup
    table = BY_SCALE[name](model, inp, FAST)
    assert len(table) == 3 * sum(s.weight.shape[0] for s in model.units().values())  # 3 scales x every unit
    scale_L = position_scales(model).numpy()
    assert scale_L.tolist() == [0] + [1] * 4 + [2] * 16
    best = _pivot(table).idxmax(axis=1)
    truth = [(("block.0.mlp", k * L + i), scale_L[i]) for k in range(NT) for i in range(L)]
    hit = np.mean([best.loc[unit] == s for unit, s in truth])
    assert hit >= (0.98 if name == "contrast" else 1.0)  # contrast: one unit's z ties across scales


@pytest.mark.parametrize("name", [n for n in BY_SCALE if RELATION[n] in ("max", "sum") and n != "unitmem"])
def test_per_scale_rows_aggregate_to_the_whole_score(lookup, name):
    model, inp = lookup
    whole = REGISTRY[name](model, inp, FAST).set_index(["layer", "unit"])
    piv = _pivot(BY_SCALE[name](model, inp, FAST)).loc[whole.index]
    if RELATION[name] == "max":
        assert np.array_equal(piv.max(axis=1).to_numpy(), whole["score"].to_numpy())
        assert np.array_equal(piv.idxmax(axis=1).to_numpy(), whole["scale"].to_numpy())
    else:
        assert np.allclose(piv.sum(axis=1).to_numpy(), whole["score"].to_numpy(), rtol=1e-6, atol=1e-9)
        assert (whole["scale"] == -1).all()


def test_on_a_real_next_scale_model_sums_hold_and_zero_out_is_the_exact_per_scale_nll_increase():
    model = tiny_model("next-scale")
    g = torch.Generator().manual_seed(0)
    N, H = 8, 4
    ids = np.array([f"i{k}" for k in range(N)])
    data = RunData(torch.zeros(N, 3, 4, 4), torch.randint(0, 3, (N,), generator=g), ids, np.ones(N, int),
                   torch.zeros(H, 3, 4, 4), torch.randint(0, 3, (H,), generator=g))
    sets = EvalSets(tuple(ids[:3]), (), H, "user list", tuple(ids[:3]))
    tok_N, tok_H = (torch.randint(0, TINY_V, (n, model.seq_len), generator=g) for n in (N, H))
    inp = Inputs(data, sets, tok_N, tok_H, sets.rows(ids, "target"))
    cfg = LocalizerConfig(ig_steps=8)
    for name in ("grad-act", "integrated-gradients"):
        whole = REGISTRY[name](model, inp, cfg).set_index(["layer", "unit"])["score"]
        summed = _pivot(BY_SCALE[name](model, inp, cfg)).sum(axis=1).loc[whole.index]
        assert np.allclose(summed, whole, rtol=1e-5, atol=1e-7)
    zo = _pivot(BY_SCALE["zero-out"](model, inp, cfg))
    tokens, labels = inp.target()
    scale_L = position_scales(model)
    name, U = "block.1.mlp", model.units()["block.1.mlp"].weight.shape[0]
    with torch.no_grad():
        on = loglik_B(model, tokens, labels).mean()
        for u, s in ((0, 0), (3, 1), (7, 2)):
            gate_LxU = torch.ones(model.seq_len, U)
            gate_LxU[scale_L == s, u] = 0.0
            with gated(model, {name: gate_LxU}):
                off = loglik_B(model, tokens, labels).mean()
            assert zo.loc[(name, u), s] == pytest.approx(float(on - off), abs=1e-5)


@pytest.mark.parametrize("name", [n for n in BY_SCALE if n != "unitmem"])
def test_with_one_scale_the_by_scale_code_gives_the_whole_table(name):
    model = tiny_model("raster")
    g = torch.Generator().manual_seed(1)
    N, H = 8, 4
    ids = np.array([f"i{k}" for k in range(N)])
    data = RunData(torch.zeros(N, 3, 4, 4), torch.randint(0, 3, (N,), generator=g), ids, np.ones(N, int),
                   torch.zeros(H, 3, 4, 4), torch.randint(0, 3, (H,), generator=g))
    sets = EvalSets(tuple(ids[:3]), (), H, "user list", tuple(ids[:3]))
    inp = Inputs(data, sets, *(torch.randint(0, TINY_V, (n, model.seq_len), generator=g) for n in (N, H)),
                 sets.rows(ids, "target"))
    cfg = LocalizerConfig(steps=20, ig_steps=4)
    whole, by = REGISTRY[name](model, inp, cfg), BY_SCALE[name](model, inp, cfg)
    assert (by["scale"] == 0).all() and by["unit"].tolist() == whole["unit"].tolist()
    assert np.allclose(by["score"], whole["score"], rtol=1e-5, atol=1e-6)
    if "dropped" in whole:
        assert (by["dropped"] == whole["dropped"]).all()


def test_saved_tables_are_reused_masks_are_seeded_and_bad_input_is_one_line(lookup, tmp_path, monkeypatch):
    from memlab.iar.localizers import scales

    model, inp = lookup
    one = BY_SCALE["slimming"](model, inp, LocalizerConfig(steps=30, seed=1))
    pd.testing.assert_frame_equal(one, BY_SCALE["slimming"](model, inp, LocalizerConfig(steps=30, seed=1)))
    assert not np.array_equal(one["score"], BY_SCALE["slimming"](model, inp, LocalizerConfig(steps=30, seed=2))["score"])
    data, sets = inp.data, inp.sets
    monkeypatch.setattr(Inputs, "build", classmethod(lambda cls, m, d, s, b=64: inp))  # the lookup tokens
    table, metrics = localize_scales_into(tmp_path / "zo", "zero-out", model, data, sets)
    assert metrics["relation"] == "separate" and metrics["n_scales"] == 3
    calls = []
    monkeypatch.setitem(scales.BY_SCALE, "zero-out", lambda *a: calls.append(1))
    again, _ = localize_scales_into(tmp_path / "zo", "zero-out", model, data, sets)
    assert calls == [] and again.equals(table)
    with pytest.raises(UsageError, match="localizer 'random' has no per-scale scores; allowed: unitmem,"):
        localize_scales("random", model, data, sets)
    with pytest.raises(UsageError, match="per_image must be off"):
        localize_scales("zero-out", model, data, sets, LocalizerConfig(per_image=True))
