"""Batched evaluation of E unit edits equals E one-at-a-time runs (each edit applied with `edit.applied`,
then the normal function): teacher-forced scores (allclose), greedy continuation and seeded sampling
(exact), on the three architectures at tiny size and the fake, for an identity edit, scaling by 0 and 0.5
and mean-ablation; chunks of the E x B rows that mix edits change nothing; the hooks compose with the KV
caches and are always removed."""

import numpy as np
import pytest
import torch

from memlab.errors import UsageError
from memlab.iar import batched
from memlab.iar.batching import teacher_forced_scores
from memlab.iar.hooks import capture, n_hooks
from memlab.iar.interventions import MeanAblateUnits, RowEdit, ScaleUnits, unit_means

from tiny_models import V, tiny_model  # noqa: E402

torch.set_num_threads(1)
MODELS = ["raster", "next-scale", "masked", "fake-raster", "fake-next-scale"]


def _model(name):
    return tiny_model(name)


def _batch(model, n=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, V, (n, model.seq_len), generator=g), torch.randint(0, 3, (n,), generator=g)


def _selection(model, frac, seed):
    rng = np.random.default_rng(seed)
    return {name: rng.choice(spec.weight.shape[0], max(1, int(frac * spec.weight.shape[0])), replace=False)
            for name, spec in model.units().items()}


def _edits(model):
    """Identity, scale by 0 and by 0.5 (the same units), mean-ablation of other units."""
    heldout, heldout_y = _batch(model, 8, seed=7)
    means = unit_means(model, heldout, heldout_y)
    sel = _selection(model, 0.25, 0)
    return [ScaleUnits({}, 1.0), ScaleUnits(sel, 0.0), ScaleUnits(sel, 0.5),
            MeanAblateUnits(_selection(model, 0.25, 1), means)]


def _one_at_a_time(model, edits, fn):
    outs = []
    for edit in edits:
        with torch.no_grad(), edit.applied(model):
            outs.append(fn())
    return outs


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("batch_size", [5, 256])
def test_teacher_forced_scores_match_one_at_a_time(name, batch_size):
    model = _model(name)
    tokens, labels = _batch(model)
    edits, pos = _edits(model), model.ranking_positions(model.default_prefix())
    acc_ExB, ll_ExB = batched.teacher_forced_scores_E(model, edits, tokens, labels, pos, batch_size=batch_size)
    assert acc_ExB.shape == ll_ExB.shape == (len(edits), len(tokens))
    refs = _one_at_a_time(model, edits, lambda: teacher_forced_scores(model, tokens, labels, pos))
    for e, (acc, ll) in enumerate(refs):
        np.testing.assert_array_equal(acc_ExB[e], acc)
        np.testing.assert_allclose(ll_ExB[e], ll, rtol=1e-5, atol=1e-5)
    assert not np.allclose(ll_ExB[1], ll_ExB[0])  # the edits do something
    assert n_hooks(model) == 0


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("batch_size", [5, 256])
def test_greedy_continuation_matches_one_at_a_time(name, batch_size):
    model = _model(name)
    tokens, labels = _batch(model)
    edits, prefix = _edits(model), model.default_prefix()
    out_ExBxL = batched.continue_greedy_E(model, edits, tokens, labels, prefix, batch_size=batch_size)
    assert out_ExBxL.shape == (len(edits), *tokens.shape)
    for e, ref in enumerate(_one_at_a_time(model, edits, lambda: model.continue_greedy(tokens, labels, prefix))):
        assert torch.equal(out_ExBxL[e], ref), e
    assert n_hooks(model) == 0


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("batch_size", [5, 256])
def test_sampling_matches_one_at_a_time_seed_by_seed(name, batch_size):
    model = _model(name)
    _, labels = _batch(model)
    seeds = [11, 3, 11, 40, 5, 6]  # a repeated seed with the same label gives the same sample
    edits = _edits(model)
    out_ExBxL = batched.generate_E(model, edits, labels, seeds, batch_size=batch_size)
    for e, ref in enumerate(_one_at_a_time(model, edits, lambda: model.generate(labels, seeds))):
        assert torch.equal(out_ExBxL[e], ref), e
    # sample i of edit e depends on seeds[i] only, not on the other rows of its chunk
    alone = batched.generate_E(model, edits[1:2], labels[3:4], seeds[3:4])
    assert torch.equal(alone[0, 0], out_ExBxL[1, 3])
    assert n_hooks(model) == 0


@pytest.mark.parametrize("name", ["raster", "next-scale"])
def test_row_edits_compose_with_the_kv_cache(name):
    model = _model(name)
    _, labels = _batch(model)
    edits, seeds = _edits(model), [1, 2, 3, 4, 5, 6]
    E = len(edits)
    with torch.no_grad(), batched.row_edits(model, edits, rows_per_edit=len(labels)):
        cached = model.generate(labels.repeat(E), seeds * E, use_cache=True)
        uncached = model.generate(labels.repeat(E), seeds * E, use_cache=False)
    assert torch.equal(cached, uncached)
    assert n_hooks(model) == 0


@pytest.mark.parametrize("name", MODELS)
def test_pre_module_scaling_by_zero_silences_exactly_the_chosen_units(name):
    """UnitSpec.pre_module's first U outputs are the pre-activations: scaling them by 0 on one stacked copy
    zeroes those units there and nowhere else."""
    model = _model(name)
    tokens, labels = _batch(model, 3)
    sel = _selection(model, 0.25, 0)
    with torch.no_grad(), batched.row_edits(model, [{}, ScaleUnits(sel, 0.0)], rows_per_edit=3), \
            capture(model) as acts:
        model.teacher_forced_logits(tokens.repeat(2, 1), labels.repeat(2))
    for layer, idx in sel.items():
        act_2xBxLxU = acts[layer].view(2, 3, *acts[layer].shape[1:])
        assert torch.equal(act_2xBxLxU[1][..., idx], torch.zeros_like(act_2xBxLxU[1][..., idx]))
        assert act_2xBxLxU[0][..., idx].abs().sum() > 0
        rest = np.setdiff1d(np.arange(act_2xBxLxU.shape[-1]), idx)
        spec = model.units()[layer]
        U = spec.weight.shape[0]
        assert torch.equal(spec.pre_module.weight[:U], spec.weight)  # the rows the weight edit scales
        if layer == next(iter(sel)):  # the first layer sees the same input on both copies
            assert torch.equal(act_2xBxLxU[1][..., rest], act_2xBxLxU[0][..., rest])


def test_row_edits_refuse_bad_edits_and_always_remove_their_hooks():
    model = _model("raster")
    tokens, labels = _batch(model, 2)
    layer = next(iter(model.units()))
    for bad, message in [({"block.9.mlp": RowEdit.identity(4)}, "unknown unit layer"),
                         ({layer: RowEdit.identity(4)}, "must have 64 units")]:
        with pytest.raises(UsageError, match=message), batched.row_edits(model, [{}, bad]):
            pass
    two = [{}, ScaleUnits({layer: [0]}, 0.0)]
    with pytest.raises(RuntimeError, match="assigned to 4 rows"), torch.no_grad(), \
            batched.row_edits(model, two, rows_per_edit=2):
        assert n_hooks(model) == 1
        model.teacher_forced_logits(tokens, labels)  # 2 rows, not 2 x 2
    assert n_hooks(model) == 0
    with pytest.raises(ValueError, match="one seed per label"):
        batched.generate_E(model, [{}], labels, [0])
