"""Hooks: capture by canonical name, always removed; weight edits restore bit-identically."""

import pytest
import torch

from memlab.errors import UsageError
from memlab.iar.fake import FakeIAR

torch.set_num_threads(1)  # tiny ops; threads only contend on a shared CPU
from memlab.iar.hooks import capture, n_hooks, scale_units, scaled_units


def _batch(model, B=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.vocab_size, (B, model.seq_len), generator=g), torch.tensor([0, 1, 0][:B])


def test_capture_records_post_relu_activations_by_name():
    model = FakeIAR(n_blocks=3, hidden=5)
    tokens, labels = _batch(model)
    with capture(model, names=["block.1.mlp"]) as acts:
        model.teacher_forced_logits(tokens, labels)
    assert list(acts) == ["block.1.mlp"]
    assert acts["block.1.mlp"].shape == (3, model.seq_len, 5)
    assert (acts["block.1.mlp"] >= 0).all() and (acts["block.1.mlp"] > 0).any()
    with capture(model, names=lambda n: n.endswith("2.mlp")) as acts:
        model.teacher_forced_logits(tokens, labels)
    assert list(acts) == ["block.2.mlp"]
    assert n_hooks(model) == 0


def test_hooks_removed_after_exception_and_unknown_name_rejected():
    model = FakeIAR(n_blocks=2)
    tokens, labels = _batch(model)
    with pytest.raises(RuntimeError, match="boom"):
        with capture(model):
            assert n_hooks(model) == 2
            raise RuntimeError("boom")
    assert n_hooks(model) == 0
    with pytest.raises(UsageError, match="allowed: block.0.mlp, block.1.mlp"):
        with capture(model, names=["block.9.mlp"]):
            pass
    assert n_hooks(model) == 0


def test_weight_edit_then_restore_is_bit_identical():
    model = FakeIAR(n_blocks=2, hidden=8)
    tokens, labels = _batch(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    logits0 = model.teacher_forced_logits(tokens, labels)
    edit = scale_units(model, {"block.0.mlp": [1, 3, 3], "block.1.mlp": [0]}, 0.37)
    w = model.blocks[0].fc.weight
    assert torch.allclose(w[1], before["blocks.0.fc.weight"][1] * 0.37)
    assert torch.equal(w[2], before["blocks.0.fc.weight"][2])
    assert not torch.equal(model.teacher_forced_logits(tokens, labels), logits0)
    edit.restore()
    edit.restore()  # idempotent
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert torch.equal(model.teacher_forced_logits(tokens, labels), logits0)


def test_factor_zero_silences_units_and_context_restores_on_error():
    model = FakeIAR(n_blocks=1, hidden=6)
    tokens, labels = _batch(model)
    w0 = model.blocks[0].fc.weight.clone()
    with pytest.raises(ValueError):
        with scaled_units(model, {"block.0.mlp": [0, 4]}, 0.0):
            with capture(model) as acts:
                model.teacher_forced_logits(tokens, labels)
            assert acts["block.0.mlp"][..., [0, 4]].abs().max() == 0
            assert acts["block.0.mlp"][..., [1, 2, 3, 5]].abs().max() > 0
            raise ValueError
    assert torch.equal(model.blocks[0].fc.weight, w0)
    with pytest.raises(UsageError, match="out of range"):
        scale_units(model, {"block.0.mlp": [6]}, 0.5)
    assert torch.equal(model.blocks[0].fc.weight, w0)
