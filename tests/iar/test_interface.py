"""The IARModel interface: every model (three real architectures at tiny size, the fake in both layouts)
answers what callers used to branch on `model.arch` for, consistently; and no caller branches."""

import re
from pathlib import Path

import pytest
import torch
from torch import nn

import memlab.iar
from memlab.iar.config import IARTrainConfig, ImageDataConfig, RunConfig
from memlab.iar.fake import FakeIAR
from memlab.iar.interface import IARModel
from memlab.iar.train import build_model, build_tokenizer

torch.set_num_threads(1)  # tiny ops; threads only contend on a shared CPU

EVERY_MODEL = ["raster", "next-scale", "masked", "fake-raster", "fake-next-scale"]


def _cfg(arch: str) -> RunConfig:
    return RunConfig(ImageDataConfig(size=16), IARTrainConfig(
        arch=arch, width=16, depth=1, heads=2, mlp_ratio=2, codebook_size=16, latent_channels=4,
        tokenizer_channels=(8, 8, 8)))


def _model(name: str) -> IARModel:
    """A tiny model with its tokenizer attached (images 16 x 16, a 4 x 4 latent grid), or the fake."""
    if name.startswith("fake-"):
        return FakeIAR(arch=name[len("fake-"):], side=4, vocab=8, n_classes=3, seed=1)
    torch.manual_seed(0)
    cfg = _cfg(name)
    model = build_model(cfg, num_classes=3)
    model.attach_tokenizer(build_tokenizer(cfg).eval())
    return model


def _images(n: int, side: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, side, side, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", EVERY_MODEL)
def test_models_are_modules_with_train_eval_and_device(name):
    m = _model(name)
    assert isinstance(m, IARModel) and isinstance(m, nn.Module)
    assert m.eval() is m and not m.training and all(not c.training for c in m.modules())
    assert m.train() is m and m.training
    assert m.device == torch.device("cpu")
    assert isinstance(m.arch, str) and m.prefix_unit in ("tokens", "scales")


@pytest.mark.parametrize("name", EVERY_MODEL)
def test_prefixes_and_ranking_positions_are_consistent(name):
    m = _model(name).eval()
    L, limit = m.seq_len, m.prefix_limit()
    assert limit == (len(m.scale_slices()) if m.prefix_unit == "scales" else L)
    assert m.revealed_mask(limit).all() and not m.revealed_mask(limit - 1).all()
    # the attack's default: half of the scales, or a quarter of the tokens (at least one)
    assert m.default_prefix() == max(1, limit // 2 if m.prefix_unit == "scales" else L // 4) < limit
    scored = m.scored_positions()
    for prefix in range(1, limit):
        rank = m.ranking_positions(prefix)
        assert rank.dtype == torch.bool and rank.shape == (L,)
        assert rank.any(), prefix
        assert not (rank & m.revealed_mask(prefix)).any(), prefix  # never a position the prefix gives away
        assert not (rank & ~scored).any(), prefix  # only positions whose logits are predictions


def test_ranking_positions_per_architecture():
    """What each architecture ranks by: every token after the prefix (raster), the finest scale whatever the
    prefix (next-scale), the masked half of teacher forcing (masked, prefix <= L / 2)."""
    raster, ns, masked = _model("raster"), _model("next-scale"), _model("masked")
    assert raster.ranking_positions(3).nonzero().flatten().tolist() == list(range(3, 16))
    finest = list(range(ns.scale_slices()[-1].start, ns.seq_len))
    assert [ns.ranking_positions(p).nonzero().flatten().tolist() for p in (1, 2, 3)] == [finest] * 3
    assert (ns.default_prefix(), raster.default_prefix(), masked.default_prefix()) == (2, 4, 4)
    assert torch.equal(masked.ranking_positions(masked.default_prefix()), masked.scored_positions())


@pytest.mark.parametrize("name", EVERY_MODEL)
def test_quality_features_are_a_deterministic_per_image_function(name):
    m = _model(name).eval()
    side = 4 if name.startswith("fake-") else 16
    x = _images(6, side)
    with torch.no_grad():
        f = m.quality_features(x)
        assert f.ndim == 2 and f.shape[0] == 6 and f.shape[1] > 0 and f.is_floating_point()
        assert torch.equal(m.quality_features(x), f)
        torch.testing.assert_close(m.quality_features(x[2:4]), f[2:4], rtol=1e-5, atol=1e-6)  # no batch effects
        assert not torch.allclose(f[0], f[1])  # different images, different features


@pytest.mark.parametrize("arch", ["raster", "next-scale", "masked"])
def test_models_build_from_a_run_config_to_fit_its_tokenizer(arch):
    cfg = _cfg(arch)
    model, tok = build_model(cfg, num_classes=3), build_tokenizer(cfg)
    assert model.arch == arch and tok.seq_len == model.seq_len
    model.attach_tokenizer(tok)  # raises when the tokenizer's sequence does not fit the model's
    assert model.tokenize(_images(2, 16)).shape == (2, model.seq_len)


# A caller that branches on the architecture or probes for attributes instead of asking the interface.
BRANCHES = re.compile(r"\.arch\s*(==|!=)|\.arch\s+(not\s+)?in\b|\barch\s+in\s*\(|\bgetattr\(|\bhasattr\(")


def test_no_caller_branches_on_the_architecture():
    root = Path(memlab.iar.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith("models/") or rel == "fake.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if BRANCHES.search(line.split("#")[0]):
                found.append(f"memlab/iar/{rel}:{n}: {line.strip()}")
    assert not found, ("ask the IARModel interface instead of branching on model.arch or probing attributes "
                       "(dataclass fields: vars(self)[name]):\n" + "\n".join(found))
