"""Causality with real tensors, save/load identical logits, cache equivalence, unit maps, seeded sampling."""

import pytest
import torch

from memlab.iar.fake import FakeIAR
from memlab.iar.models import MODEL_CLASSES, MaskedTokenModel, NextScaleTransformer, RasterTransformer

V = 32
torch.set_num_threads(1)


def _tiny(arch):
    common = dict(vocab_size=V, num_classes=3, width=32, depth=2, heads=2, mlp_ratio=2)
    if arch == "next-scale":
        return NextScaleTransformer(scales=(1, 2, 3), **common)
    if arch == "raster":
        return RasterTransformer(seq_len=9, **common)
    return MaskedTokenModel(grid=3, image_size=12, **common)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


EVERY_MODEL = ["raster", "next-scale", "masked", "fake-raster", "fake-next-scale"]


def _any(name):
    """Every IARModel implementation: the three tiny models and the fake one in both of its layouts."""
    if name.startswith("fake-"):
        return FakeIAR(arch=name[len("fake-"):], side=4, vocab=8, n_classes=3, seed=1)
    return _tiny(name)


@pytest.mark.parametrize("name", EVERY_MODEL)
def test_scored_positions_are_exactly_those_whose_logits_ignore_their_own_token(name):
    m = _any(name).eval()
    L = m.seq_len
    scored = m.scored_positions()
    assert scored.dtype == torch.bool and scored.shape == (L,)
    assert int(scored.sum()) == (L - L // 2 if m.arch == "masked" else L)
    t = torch.randint(0, m.vocab_size, (3, L)); y = torch.tensor([0, 1, 2])
    with torch.no_grad():
        base = m.teacher_forced_logits(t, y)
        for p in range(L):
            t2 = t.clone(); t2[:, p] = (t[:, p] + 1) % m.vocab_size
            moved = (m.teacher_forced_logits(t2, y)[:, p] - base[:, p]).abs().max()
            assert (moved < 1e-5) == bool(scored[p]), (p, float(moved))


@pytest.mark.parametrize("name", EVERY_MODEL)
def test_revealed_mask_is_what_continue_greedy_keeps_and_reads(name):
    m = _any(name).eval()
    L = m.seq_len
    sizes = [s.stop - s.start for s in m.scale_slices()]
    n_prefix = m.prefix_limit()  # prefix counts scales, or tokens
    t = torch.randint(0, m.vocab_size, (3, L)); y = torch.tensor([2, 0, 1])
    t_other = (t + torch.randint(1, m.vocab_size, t.shape)) % m.vocab_size  # differs from t everywhere
    previous = torch.zeros(L, dtype=torch.bool)
    for prefix in range(n_prefix + 1):
        shown = m.revealed_mask(prefix)
        assert shown.dtype == torch.bool and shown.shape == (L,)
        assert int(shown.sum()) == (sum(sizes[:prefix]) if m.arch == "next-scale" else prefix)
        assert (shown | ~previous).all()  # a longer prefix reveals a superset
        if m.arch != "masked":  # autoregressive models reveal a leading run of positions
            assert shown[:int(shown.sum())].all()
        out = m.continue_greedy(t, y, prefix)
        assert torch.equal(out[:, shown], t[:, shown])
        # the continuation reads nothing else: replacing every hidden token changes no output
        assert torch.equal(m.continue_greedy(torch.where(shown, t, t_other), y, prefix), out)
        previous = shown
    assert previous.all()


def test_raster_position_i_ignores_later_tokens():
    m = _tiny("raster").eval()
    t = torch.randint(0, V, (4, 9)); y = torch.tensor([0, 1, 2, 0])
    base = m.teacher_forced_logits(t, y)
    for i in range(9):
        t2 = t.clone()
        t2[:, i:] = torch.randint(0, V, (4, 9 - i))  # change token i and everything after
        out = m.teacher_forced_logits(t2, y)
        torch.testing.assert_close(out[:, : i + 1], base[:, : i + 1], rtol=0, atol=1e-5)  # pos i predicts token i
        if i + 1 < 9:
            assert (out[:, i + 1:] - base[:, i + 1:]).abs().max() > 1e-3  # later positions do see it


def test_next_scale_scale_s_ignores_finer_scales():
    m = _tiny("next-scale").eval()
    sl = m.scale_slices()
    assert [s.stop - s.start for s in sl] == [1, 4, 9]
    t = torch.randint(0, V, (4, 14)); y = torch.tensor([0, 1, 2, 0])
    base = m.teacher_forced_logits(t, y)
    for s in range(3):
        t2 = t.clone()
        t2[:, sl[s].start:] = torch.randint(0, V, (4, 14 - sl[s].start))  # scale s and finer change
        out = m.teacher_forced_logits(t2, y)
        torch.testing.assert_close(out[:, : sl[s].stop], base[:, : sl[s].stop], rtol=0, atol=1e-5)
        if s + 1 < 3:
            assert (out[:, sl[s + 1]] - base[:, sl[s + 1]]).abs().max() > 1e-3
    # within a scale, positions see each other's inputs: changing scale 0 moves every position of scale 1
    t3 = t.clone(); t3[:, 0] = (t[:, 0] + 1) % V
    d = (m.teacher_forced_logits(t3, y) - base)[:, sl[1]].abs().amax(-1)
    assert (d > 1e-4).all()


def test_masked_teacher_forcing_hides_masked_tokens():
    m = _tiny("masked").eval()
    t = torch.randint(0, V, (2, 9)); y = torch.tensor([0, 1])
    base = m.teacher_forced_logits(t, y)
    hidden = m.scored_positions()
    assert hidden.sum() == 9 - 9 // 2
    t2 = t.clone(); t2[:, hidden] = (t[:, hidden] + 1) % V  # masked tokens are not visible at all
    torch.testing.assert_close(m.teacher_forced_logits(t2, y)[:, hidden], base[:, hidden], rtol=0, atol=1e-5)
    assert (base[:, ~hidden].argmax(-1) == t[:, ~hidden]).all()


@pytest.mark.parametrize("arch", ["raster", "next-scale", "masked"])
def test_save_pretrained_from_pretrained_identical_logits(arch, tmp_path):
    m = _tiny(arch).eval()
    with torch.no_grad():  # move away from the initialisation so a silent re-init would show
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    m.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "diffusion_pytorch_model.safetensors").is_file()
    m2 = MODEL_CLASSES[arch].from_pretrained(tmp_path / "m").eval()
    t = torch.randint(0, V, (3, m.seq_len)); y = torch.tensor([0, 1, 2])
    with torch.no_grad():
        torch.testing.assert_close(m2.teacher_forced_logits(t, y), m.teacher_forced_logits(t, y), rtol=0, atol=0)
    assert torch.equal(m2.continue_greedy(t, y, 1), m.continue_greedy(t, y, 1))


@pytest.mark.parametrize("arch", ["raster", "next-scale"])
def test_kv_cache_matches_recomputation_and_seeds_are_per_sample(arch):
    m = _tiny(arch).eval()
    y = torch.tensor([0, 1, 2, 1])
    a = m.generate(y, [5, 6, 7, 8])
    assert torch.equal(a, m.generate(y, [5, 6, 7, 8], use_cache=False))
    assert torch.equal(a[2:3], m.generate(y[2:3], [7]))  # sample i depends only on seed i
    assert not torch.equal(a[:1], m.generate(y[:1], [9]))
    t = torch.randint(0, V, (4, m.seq_len))
    for prefix in (0, 1, 2):
        full = m._fill(t, y, prefix, lambda l: l.argmax(-1), use_cache=False)
        assert torch.equal(m.continue_greedy(t, y, prefix), full)
        assert torch.equal(full[:, : m.scale_slices()[prefix].start if arch == "next-scale" else prefix],
                           t[:, : m.scale_slices()[prefix].start if arch == "next-scale" else prefix])


def test_masked_generate_and_continue():
    m = _tiny("masked").eval()
    y = torch.tensor([0, 1, 2])
    a = m.generate(y, [1, 2, 3])
    assert a.shape == (3, 9) and a.max() < V  # no mask token left
    assert torch.equal(a[1:2], m.generate(y[1:2], [2]))
    t = torch.randint(0, V, (3, 9))
    out = m.continue_greedy(t, y, 4)
    shown = m.revealed_mask(4)
    assert torch.equal(out[:, shown], t[:, shown]) and out.max() < V


@pytest.mark.parametrize("arch", ["raster", "next-scale", "masked"])
def test_units_hook_sees_post_nonlinearity_activation_fed_by_weight_rows(arch):
    m = _tiny(arch).eval()
    units = m.units()
    assert list(units) == ["block.0.mlp", "block.1.mlp"]
    spec = units["block.1.mlp"]
    seen = {}
    h = spec.module.register_forward_hook(lambda mod, i, o: seen.__setitem__("a", o.detach().clone()))
    t = torch.randint(0, V, (2, m.seq_len)); y = torch.tensor([0, 1])
    with torch.no_grad():
        m.teacher_forced_logits(t, y)
        U = spec.weight.shape[0]
        assert seen["a"].shape == (2, m.seq_len, U) and spec.weight.shape[1] == 32
        before = seen["a"]
        spec.weight[5] *= 0.5  # scaling row u scales unit u (GELU is not linear: check sign / zero instead)
        if spec.bias is not None:
            spec.bias[5] *= 0.5
        m.teacher_forced_logits(t, y)
        after = seen["a"]
        spec.weight[5] *= 0.0
        if spec.bias is not None:
            spec.bias[5] *= 0.0
        m.teacher_forced_logits(t, y)
    h.remove()
    assert not torch.allclose(before[..., 5], after[..., 5])
    torch.testing.assert_close(after[..., :5], before[..., :5])  # other units untouched
    assert seen["a"][..., 5].abs().max() == 0  # zero incoming weights -> unit silent (GELU(0) = 0, GEGLU h = 0)
