"""Cached and uncached generation give identical tokens for every architecture that has a cache (raster: the
key/value cache; next-scale: the cached coarse scales), at the test size and at the 8x8 setting's 64 tokens,
for seeded sampling and for greedy continuation from every prefix, with MemSinks sinks on as well. The masked
model re-reads the whole grid at every step, so it has no cached path to compare."""

import pytest
import torch

from memlab.iar.models import NextScaleTransformer, RasterTransformer
from memlab.iar.models.layers import KVCache

V = 24


def _model(arch: str, tokens: int, sinks: float = 0.0):
    common = dict(vocab_size=V, num_classes=3, width=32, depth=2, heads=2, mlp_ratio=2, sink_fraction=sinks)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        if arch == "raster":
            m = RasterTransformer(seq_len=tokens, **common)
        else:
            m = NextScaleTransformer(scales=(1, 2, 3) if tokens == 14 else (1, 2, 4, 8), **common)
        with torch.no_grad():  # away from the initialisation: sharper logits, fewer near-ties
            for p in m.parameters():
                p.mul_(3.0)
    return m.eval()


CASES = [("raster", 9), ("raster", 64), ("next-scale", 14), ("next-scale", 85)]


@pytest.mark.parametrize("arch,tokens", CASES)
def test_sampling_with_and_without_cache_is_identical(arch, tokens):
    m = _model(arch, tokens)
    assert m.seq_len == tokens
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    seeds = [3, 4, 5, 6, 7, 8]
    cached, uncached = m.generate(y, seeds), m.generate(y, seeds, use_cache=False)
    assert torch.equal(cached, uncached)
    assert len({tuple(r) for r in cached.tolist()}) == len(seeds)  # the samples differ: the check has content


@pytest.mark.parametrize("arch,tokens", CASES)
def test_greedy_continuation_with_and_without_cache_is_identical(arch, tokens):
    m = _model(arch, tokens)
    g = torch.Generator().manual_seed(1)
    t = torch.randint(0, V, (5, m.seq_len), generator=g)
    y = torch.tensor([0, 1, 2, 1, 0])
    argmax = lambda logits: logits.argmax(-1)  # noqa: E731
    limit = m.prefix_limit()
    prefixes = range(limit) if limit <= 16 else (0, 1, limit // 4, limit // 2, limit - 1)  # 64 tokens: a spread
    for prefix in prefixes:
        cached = m.continue_greedy(t, y, prefix)
        assert torch.equal(cached, m._fill(t, y, prefix, argmax, use_cache=False)), prefix
        kept = m.revealed_mask(prefix)
        assert torch.equal(cached[:, kept], t[:, kept])


@pytest.mark.parametrize("arch", ["raster", "next-scale"])
def test_cache_is_identical_with_memsinks_sinks_on(arch):
    m = _model(arch, 64 if arch == "raster" else 85, sinks=0.25)
    from memlab.iar.mitigate.memsinks import set_sinks

    set_sinks(m, "on")
    y, seeds = torch.tensor([0, 1, 2]), [1, 2, 3]
    assert torch.equal(m.generate(y, seeds), m.generate(y, seeds, use_cache=False))


def test_kv_cache_appends_positions_per_layer():
    cache = KVCache(2)
    k1, v1 = torch.randn(2, 1, 3, 4), torch.randn(2, 1, 3, 4)
    k2, v2 = torch.randn(2, 1, 1, 4), torch.randn(2, 1, 1, 4)
    cache.extend(0, k1, v1)
    k, v = cache.extend(0, k2, v2)
    assert torch.equal(k, torch.cat([k1, k2], 2)) and torch.equal(v, torch.cat([v1, v2], 2))
    assert cache.k[1] is None
