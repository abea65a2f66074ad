"""The localizer registry on the fake lookup memorizer, whose memory lives in known units: lookup unit
k * L + i of block.0.mlp fires only at position i of image k and writes its token. Targets T = images 0..3,
so their 64 lookup units are the truth; the controls' 64 lookup units memorize too, but not T.

Every causal method finds the truth exactly (recall 1.0); the others have measured, explained bounds."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from memlab.cli import main
from memlab.errors import UsageError
from memlab.iar.config import LOCALIZERS, YARDSTICK_LOCALIZERS, LocalizerConfig, YardstickConfig
from tests.iar.tiny_models import lookup_setting
from memlab.iar.localizers import REGISTRY, localize, localize_into, recall_at_k
from memlab.iar.localizers.common import Inputs, gated, loglik_B
from memlab.iar.evalsets import EvalSets
from memlab.iar.interventions import ZeroUnits
from memlab.iar.pipeline import RunData

from tiny_models import V as TINY_V, tiny_model  # noqa: E402

torch.set_num_threads(1)
K, L, V, NT = 8, 16, 8, 4  # images, tokens, vocabulary, targets
EXACT = ["integrated-gradients", "zero-out", "hard-concrete", "slimming", "oracle"]


@pytest.fixture(scope="module")
def fake():
    return lookup_setting(NT, K, L, V)


def _truth(images):
    return {("block.0.mlp", k * L + i) for k in images for i in range(L)}


def _repeats(tokens, k):
    """Positions where image k's token equals its predecessor."""
    return {("block.0.mlp", k * L + i) for i in range(1, L) if tokens[k, i] == tokens[k, i - 1]}


def test_registry_names_are_the_configs_and_the_yardstick_takes_all_but_random():
    assert tuple(REGISTRY) == LOCALIZERS and len(LOCALIZERS) == 10
    assert YARDSTICK_LOCALIZERS == tuple(n for n in LOCALIZERS if n != "random")
    assert YardstickConfig(localizer="hard-concrete").localizer == "hard-concrete"


@pytest.mark.parametrize("name", EXACT)
def test_causal_methods_rank_the_targets_memorization_units_first(fake, name):
    model, data, sets, _ = fake
    table = localize(name, model, data, sets, LocalizerConfig())
    assert list(table.columns[:5]) == ["layer", "block", "unit", "scale", "score"]
    assert len(table) == 2 * (K * L + 64) and (table["scale"] == -1).all()
    assert recall_at_k(table, _truth(range(NT))) == 1.0
    if name == "oracle":  # also against a draw of 2 of the 4 other training images
        assert table["uses_labels"].all()
        few = localize(name, model, data, sets, LocalizerConfig(oracle_reference=2))
        assert recall_at_k(few, _truth(range(NT))) == 1.0 and not few["score"].equals(table["score"])


def test_grad_act_misses_exactly_the_saturated_repeats(fake):
    """The softmax is saturated (p(true) ~ 1 - 7e-10): a gradient is ~1e-4 and a quarter smaller where the
    target token repeats its predecessor (the previous-token input adds a logit); there eleven block-1
    readers outrank it. Integrated gradients, which integrate out of saturation, find them all."""
    model, data, sets, tokens = fake
    table = localize("grad-act", model, data, sets, LocalizerConfig())
    truth, repeats = _truth(range(NT)), set().union(*(_repeats(tokens, k) for k in range(NT)))
    top = table.nlargest(len(truth), "score")
    missed = truth - set(zip(top["layer"], top["unit"]))
    assert missed == repeats and len(repeats) == 11
    assert recall_at_k(table, truth) == pytest.approx(53 / 64)


def test_activation_statistics_have_measured_bounds(fake):
    """activation: readers in block 1 see the 20-logit answers and fire hardest on any memorized image (0.0).
    contrast: a lookup unit fires at 1 of 16 positions of 1 of 4 targets and at chance (1/8) on held-out
    images, z ~ 0.4, within the noise of 64 fillers and those readers (0.36; per image 0.5-0.9).
    unitmem: blind to T (a control's lookup unit is as selective), so at most about half its top 64 are T's;
    its top 128 hold 91% of all 128 lookup units (augmentations blur a few)."""
    model, data, sets, _ = fake
    truth = _truth(range(NT))
    act = localize("activation", model, data, sets, LocalizerConfig())
    assert recall_at_k(act, truth) == 0.0 and (act.nlargest(64, "score")["layer"] == "block.1.mlp").mean() > 0.9
    whole = localize("contrast", model, data, sets, LocalizerConfig())
    assert recall_at_k(whole, truth) == pytest.approx(0.359, abs=0.01)
    per = localize("contrast", model, data, sets, LocalizerConfig(per_image=True))
    rec = [recall_at_k(per[per["target"] == t], _truth([k])) for k, t in enumerate(sets.target_ids)]
    assert min(rec) == 0.5 and np.mean(rec) > 0.7
    um = localize("unitmem", model, data, sets, LocalizerConfig())
    assert recall_at_k(um, truth) <= 0.5 and recall_at_k(um, _truth(range(K))) > 0.9
    assert {"k_star", "image_id"} <= set(um.columns)


@pytest.mark.parametrize("name", ["grad-act", "integrated-gradients", "zero-out", "oracle", "slimming"])
def test_per_image_mode_finds_each_targets_own_units(fake, name):
    model, data, sets, tokens = fake
    table = localize(name, model, data, sets, LocalizerConfig(per_image=True))
    assert list(table.columns[:2]) == ["target", "layer"] and table.columns[-1] == "neg"
    assert len(table) == NT * 2 * (K * L + 64)
    for k, t in enumerate(sets.target_ids):
        mine = table[table["target"] == t]
        expected = 1 - len(_repeats(tokens, k)) / L if name == "grad-act" else 1.0
        assert recall_at_k(mine, _truth([k])) == pytest.approx(expected)
        own = mine[(mine["layer"] == "block.0.mlp") & mine["unit"].isin([u for _, u in _truth([k])])]
        assert (own["score"] > own["neg"]).mean() >= expected  # self above neg: the unit is this image's
    scores = table.pivot_table(index=["layer", "unit"], columns="target", values="score")
    neg0 = table[table["target"] == "img0"].set_index(["layer", "unit"])["neg"]
    assert np.allclose(neg0, scores.drop(columns="img0").mean(1).loc[neg0.index])


@pytest.mark.parametrize("arch", ["raster", "next-scale", "masked"])
def test_on_real_architectures_ig_is_complete_and_zero_out_is_the_exact_nll_increase(arch):
    """Integrated gradients of a layer add up to LL(layer on) - LL(layer off); zero-out's score of a unit is
    the NLL increase of removing it one at a time; every method gives a finite score to every unit."""
    model = tiny_model(arch)
    g = torch.Generator().manual_seed(0)
    N, H, L_ = 8, 4, model.seq_len
    ids = np.array([f"i{k}" for k in range(N)])
    data = RunData(torch.zeros(N, 3, 4, 4), torch.randint(0, 3, (N,), generator=g), ids, np.ones(N, int),
                   torch.zeros(H, 3, 4, 4), torch.randint(0, 3, (H,), generator=g))
    sets = EvalSets(tuple(ids[:3]), (), H, "user list", tuple(ids[:3]))
    tok_N, tok_H = (torch.randint(0, TINY_V, (n, L_), generator=g) for n in (N, H))
    inp = Inputs(data, sets, tok_N, tok_H, sets.rows(ids, "target"))
    tokens, labels = inp.target()
    ig = REGISTRY["integrated-gradients"](model, inp, LocalizerConfig(ig_steps=24))
    with torch.no_grad():
        on = loglik_B(model, tokens, labels).mean()
    for name, spec in model.units().items():
        with torch.no_grad(), gated(model, {name: torch.zeros(spec.weight.shape[0])}):
            off = loglik_B(model, tokens, labels).mean()
        assert ig[ig["layer"] == name]["score"].sum() == pytest.approx(float(on - off), rel=0.02, abs=1e-4)
    zo = REGISTRY["zero-out"](model, inp, LocalizerConfig())
    name = next(iter(model.units()))
    for u in (0, 5):
        with torch.no_grad(), ZeroUnits({name: [u]}).applied(model):
            edited = loglik_B(model, tokens, labels).mean()
        score = zo[(zo["layer"] == name) & (zo["unit"] == u)]["score"].item()
        assert score == pytest.approx(float(on - edited), abs=1e-5)
    for method in set(REGISTRY) - {"unitmem"}:
        t = REGISTRY[method](model, inp, LocalizerConfig(steps=5))
        assert len(t) == sum(s.weight.shape[0] for s in model.units().values()) and np.isfinite(t["score"]).all()


def test_random_is_seeded_and_at_chance(fake):
    model, data, sets, _ = fake
    a, b = (localize("random", model, data, sets, LocalizerConfig(seed=3)) for _ in range(2))
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(localize("random", model, data, sets, LocalizerConfig(seed=4)))
    recalls = [recall_at_k(localize("random", model, data, sets, LocalizerConfig(seed=s)), _truth(range(NT)))
               for s in range(10)]
    assert abs(np.mean(recalls) - 64 / 384) < 0.05  # chance: 64 of 384 units


@pytest.mark.parametrize("name", ["hard-concrete", "slimming"])
def test_learned_masks_are_deterministic_per_seed_and_honour_the_sparsity(fake, name):
    model, data, sets, _ = fake
    state = {k: v.clone() for k, v in model.state_dict().items()}
    one = localize(name, model, data, sets, LocalizerConfig(seed=1, steps=50))
    pd.testing.assert_frame_equal(one, localize(name, model, data, sets, LocalizerConfig(seed=1, steps=50)))
    other = localize(name, model, data, sets, LocalizerConfig(seed=2, steps=50))
    assert not np.array_equal(one["score"], other["score"])
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())  # the model is untouched
    truth = _truth(range(NT))
    dropped = {}
    for sparsity in (0.0, 0.3, 3.0, 100.0):
        t = localize(name, model, data, sets, LocalizerConfig(sparsity=sparsity))
        d = t[t["dropped"]]
        dropped[sparsity] = set(zip(d["layer"], d["unit"]))
    n = [len(dropped[s]) for s in sorted(dropped)]
    assert n == sorted(n, reverse=True) and n[0] > 150 and n[-1] == 0  # more weight, fewer units dropped
    assert dropped[0.3] == truth and dropped[3.0] <= truth  # a moderate weight drops T's units and nothing else


def test_bad_input_is_one_usage_error(fake):
    model, data, sets, _ = fake
    with pytest.raises(UsageError, match="unknown localizer 'nope'; allowed: unitmem, activation"):
        localize("nope", model, data, sets)
    with pytest.raises(UsageError, match="sparsity must be >= 0"):
        LocalizerConfig(sparsity=-1.0)
    with pytest.raises(UsageError, match="unknown retain 'test'"):
        LocalizerConfig(retain="test")


def test_localize_into_saves_reuses_and_resumes_per_target(fake, tmp_path, monkeypatch):
    model, data, sets, _ = fake
    cfg = LocalizerConfig(per_image=True)
    table, metrics = localize_into(tmp_path / "zo", "zero-out", model, data, sets, cfg)
    assert (tmp_path / "zo" / "units.parquet").is_file() and metrics["resumed_targets"] == 0
    assert not (tmp_path / "zo" / "state").exists() and metrics["n_targets"] == NT
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "zo" / "units.parquet"), table)
    import memlab.iar.localizers as loc

    calls = []
    real = loc.REGISTRY["zero-out"]
    monkeypatch.setitem(loc.REGISTRY, "zero-out", lambda *a: calls.append(1) or real(*a))
    again, _ = localize_into(tmp_path / "zo", "zero-out", model, data, sets, cfg)
    assert calls == [] and again.equals(table)  # finished, same config: read back
    # a run stopped after target 0: its table is in state/, the rest is computed
    (tmp_path / "zo" / "metrics.json").unlink()
    (tmp_path / "zo" / "state").mkdir()
    table[table["target"] == "img0"].drop(columns=["target", "neg"]).to_parquet(
        tmp_path / "zo" / "state" / "target-0000.parquet")
    resumed, metrics = localize_into(tmp_path / "zo", "zero-out", model, data, sets, cfg)
    assert len(calls) == NT - 1 and metrics["resumed_targets"] == 1
    pd.testing.assert_frame_equal(resumed, table)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from memlab.iar.config import IARTrainConfig, ImageDataConfig, RunConfig
    from memlab.iar.train import train_run

    out = tmp_path_factory.mktemp("iar") / "run"
    cfg = RunConfig(data=ImageDataConfig(n_train=16, n_heldout=16, size=16, duplicates=3, n_duplicated=2),
                    train=IARTrainConfig(arch="raster", epochs=2, tokenizer_epochs=1, width=32, depth=2, heads=2,
                                         codebook_size=16, latent_channels=4, tokenizer_channels=(8, 8, 8)))
    train_run(cfg, out, progress=False, figures=False)
    return out


YARD = ["--ks", "10", "--factors", "0", "--cloud-ks", "5,20", "--n-samples", "16", "--n-boot", "50",
        "--candidates", "4"]


def _one_line_error(capsys, code, needle):
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and needle in err, err


def test_ablate_with_a_registry_localizer_writes_its_table_and_reuses_it(capsys, run_dir):
    argv = ["iar", "ablate", str(run_dir), "--localizer", "slimming", "--mask-steps", "5", *YARD, "--json"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    here = run_dir / "localizers" / "slimming"
    units = pd.read_parquet(here / "units.parquet")
    assert first["localizer"] == "slimming" and len(units) == 2 * 32 * 4 and units["dropped"].dtype == bool
    saved = json.loads((here / "config.json").read_text())
    assert saved["localizer"] == "slimming" and saved["config"]["steps"] == 5
    assert not (run_dir / "localize").exists()  # UnitMem is not computed for another localizer
    table = pd.read_parquet(run_dir / "yardstick" / "yardstick.parquet")
    assert table["method"].tolist() == ["slimming"] + ["random"] * 10
    stamp = (here / "metrics.json").stat().st_mtime_ns
    assert main(argv) == 0 and json.loads(capsys.readouterr().out)["verdicts"] == first["verdicts"]
    assert (here / "metrics.json").stat().st_mtime_ns == stamp  # the table was reused


@pytest.mark.parametrize("extra, needle", [
    (["--localizer", "nope"], "unknown --localizer 'nope'; allowed: unitmem, activation, contrast"),
    (["--localizer", "random"], "unknown --localizer 'random'"),
    (["--mask-steps", "5"], "--mask-steps is a yardstick option: it needs --localizer NAME"),
    (["--localizer", "slimming", "--sparsity", "-1"], "--sparsity must be >= 0"),
])
def test_bad_localizer_options_exit_2_with_one_line(capsys, tmp_path, extra, needle):
    _one_line_error(capsys, main(["iar", "ablate", str(tmp_path / "no-run"), *extra]), needle)
