"""Unit edits behind the intervention protocol: each restores the model bit for bit, its per-unit row edit
describes the same change (checked by applying the row edit through a pre-activation hook), zeroing
equals scaling by 0, and mean-ablation pins the edited units at their held-out means."""

import numpy as np
import pytest
import torch

from memlab.errors import UsageError
from memlab.iar.interventions import MeanAblateUnits, NewRun, ScaleUnits, ZeroUnits, unit_means

from tiny_models import V, tiny_model  # noqa: E402

torch.set_num_threads(1)


def _model(name):
    return tiny_model(name)


def _batch(model, n=6):
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, V, (n, model.seq_len), generator=g), torch.randint(0, 3, (n,), generator=g)


def _selection(model, frac=0.25, seed=0):
    rng = np.random.default_rng(seed)
    return {name: rng.choice(spec.weight.shape[0], max(1, int(frac * spec.weight.shape[0])), replace=False)
            for name, spec in model.units().items()}


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _with_row_edits(model, row_edits, tokens, labels):
    """Logits with the row edits applied through hooks on the pre-activation (the first U outputs of the
    Linear that owns the unit layer's weight rows; GEGLU's proj has 2U): the batched evaluation's way."""
    handles = []

    def scale_pre(_m, _i, out, r):
        U = len(r.scale_U)
        return torch.cat([out[..., :U] * r.scale_U.to(out.dtype), out[..., U:]], dim=-1)

    for name, spec in model.units().items():
        if name not in row_edits:
            continue
        row = row_edits[name]
        pre = next(m for m in model.modules() if isinstance(m, torch.nn.Linear)
                   and m.weight.data_ptr() == spec.weight.data_ptr())
        handles.append(pre.register_forward_hook(lambda m, i, out, r=row: scale_pre(m, i, out, r)))
        handles.append(spec.module.register_forward_hook(
            lambda _m, _i, out, r=row: torch.where(r.replace_U, r.value_U.to(out.dtype), out)))
    try:
        with torch.no_grad():
            return model.teacher_forced_logits(tokens, labels)
    finally:
        for h in handles:
            h.remove()


@pytest.mark.parametrize("name", ["raster", "next-scale", "masked", "fake"])
@pytest.mark.parametrize("factor", [0.0, 0.5])
def test_scaling_restores_exactly_and_matches_its_row_edit(name, factor):
    model = _model(name)
    tokens, labels = _batch(model)
    before, state = model.teacher_forced_logits(tokens, labels).detach(), _state(model)
    edit = ScaleUnits(_selection(model), factor, params={"k": 25})
    with edit.applied(model):
        edited = model.teacher_forced_logits(tokens, labels).detach()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())  # bit for bit
    assert not torch.allclose(edited, before)
    torch.testing.assert_close(_with_row_edits(model, edit.row_edits(model), tokens, labels), edited,
                               rtol=1e-5, atol=1e-5)
    assert edit.describe() == {"edit": "scale", "factor": factor, "n_edited": edit.n_edited, "k": 25}


def test_zero_is_scaling_by_zero_and_restore_is_idempotent():
    model = _model("raster")
    tokens, labels = _batch(model)
    sel = _selection(model, 0.5)
    with ScaleUnits(sel, 0.0).applied(model):
        scaled = model.teacher_forced_logits(tokens, labels).detach()
    handle = ZeroUnits(sel).apply(model)
    zeroed = model.teacher_forced_logits(tokens, labels).detach()
    handle.restore()
    handle.restore()
    assert torch.equal(scaled, zeroed)
    assert torch.equal(model.teacher_forced_logits(tokens, labels), _model("raster").teacher_forced_logits(tokens, labels))


@pytest.mark.parametrize("name", ["raster", "next-scale", "masked"])
def test_mean_ablation_pins_units_at_their_heldout_means_and_restores(name):
    from memlab.iar.hooks import capture

    model = _model(name)
    heldout, heldout_y = _batch(model, 10)
    tokens, labels = _batch(model, 4)
    means = unit_means(model, heldout, heldout_y, batch_size=3)
    layer = next(iter(model.units()))
    assert means[layer].shape == (model.units()[layer].weight.shape[0],)
    with capture(model) as acts:
        model.teacher_forced_logits(heldout, heldout_y)
    torch.testing.assert_close(means[layer], acts[layer].double().mean(dim=(0, 1)).float())
    sel = {layer: [0, 3]}
    before = model.teacher_forced_logits(tokens, labels).detach()
    edit = MeanAblateUnits(sel, means)
    with edit.applied(model), capture(model) as acts:
        edited = model.teacher_forced_logits(tokens, labels).detach()
        pinned = acts[layer][..., [0, 3]]
    assert torch.equal(pinned, means[layer][[0, 3]].expand_as(pinned))
    torch.testing.assert_close(_with_row_edits(model, edit.row_edits(model), tokens, labels), edited)
    assert torch.equal(model.teacher_forced_logits(tokens, labels).detach(), before)  # hooks removed
    assert edit.n_edited == 2 and edit.describe()["edit"] == "mean-ablate"


def test_bad_selection_changes_nothing(tmp_path):
    model = _model("raster")
    state = _state(model)
    layer = next(iter(model.units()))
    with pytest.raises(UsageError, match="unit index out of range"):
        ScaleUnits({layer: [0, 10_000]}, 0.0).apply(model)
    with pytest.raises(UsageError, match="unknown unit layer"):
        ScaleUnits({"block.99.mlp": [0]}, 0.0).apply(model)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    run = NewRun("unlearn", tmp_path / "r", (("steps", 10),))
    assert run.describe() == {"method": "unlearn", "run": str(tmp_path / "r"), "steps": 10}
