"""The fast UnitMem pass: batched augmentation that still depends only on (seed, image id, a), and the token
cache, which gives the same mu bit for bit, tokenizes nothing on a hit and misses whenever the tokenizer,
augmentations, image ids or pixels change."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from memlab.errors import UsageError
from memlab.iar.augment import AugmentConfig, _params, augment
from memlab.iar.config import IARTrainConfig, ImageDataConfig, RunConfig
from memlab.iar.fake import FakeIAR
from memlab.iar.train import build_model, build_tokenizer
from memlab.iar.token_cache import TOKEN_BATCH
from memlab.iar.unitmem import UnitMemConfig, activation_means

torch.set_num_threads(1)  # tiny ops; threads only contend on a shared CPU


def _loop_augment(images_Bx3xHxW, image_ids, a, cfg):
    """The per-image loop augment() replaced: the reference for what the batched one computes."""
    s = cfg.max_shift
    padded = F.pad(images_Bx3xHxW, (s, s, s, s), mode="replicate") if s else images_Bx3xHxW
    H, W = images_Bx3xHxW.shape[-2:]
    out = torch.empty_like(images_Bx3xHxW)
    for b, image_id in enumerate(image_ids):
        dy, dx, flip, bright, contrast, shift_3 = _params(cfg, image_id, a)
        x = padded[b, :, s + dy:s + dy + H, s + dx:s + dx + W]
        x = x.flip(-1) if flip else x
        mean = x.mean()
        out[b] = (x - mean) * contrast + mean + bright + torch.as_tensor(shift_3, dtype=x.dtype)[:, None, None]
    return out.clamp(0.0, 1.0)


def test_batched_augment_is_the_per_image_rule_whatever_the_batch_or_position():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 3, 8, 8, generator=g)
    ids = list(range(500, 520)) + [f"img-{i}" for i in range(20)]
    cfg = AugmentConfig(n_aug=4, max_shift=2, seed=3)
    for a in (1, 2, 3):
        full = augment(x, ids, a, cfg)
        params = [_params(cfg, i, a) for i in ids]
        assert {p[2] for p in params} == {True, False} and {p[0] for p in params} >= {-2, 0, 2}  # all cases met
        torch.testing.assert_close(full, _loop_augment(x, ids, a, cfg), rtol=0, atol=2e-7)  # one float32 ulp
        for b in range(40):  # alone, and last of a reversed batch of another size
            assert torch.equal(augment(x[b:b + 1], ids[b:b + 1], a, cfg)[0], full[b])
        rev = list(range(39, -1, -3))
        assert torch.equal(augment(x[rev], [ids[i] for i in rev], a, cfg), full[rev])
    assert torch.equal(augment(x, ids, 0, cfg), x)
    with pytest.raises(ValueError, match="40 images but 39 image ids"):
        augment(x, ids[:-1], 1, cfg)


def _images(K, side=4, seed=0):
    return torch.rand(K, 3, side, side, generator=torch.Generator().manual_seed(seed))


def _tiny_real(arch="next-scale", seed=0):
    """A tiny model of the project with its own tokenizer (images 16 x 16)."""
    torch.manual_seed(seed)
    cfg = RunConfig(ImageDataConfig(size=16), IARTrainConfig(
        arch=arch, width=16, depth=1, heads=2, mlp_ratio=2, codebook_size=16, latent_channels=4,
        tokenizer_channels=(8, 8, 8)))
    model = build_model(cfg, num_classes=3)
    model.attach_tokenizer(build_tokenizer(cfg).eval())
    return model


def _counting(model):
    """Count tokenize calls (and the images they got) on this model instance."""
    calls = {"n": 0, "images": 0}
    tokenize = model.tokenize

    def counted(x):
        calls["n"] += 1
        calls["images"] += len(x)
        return tokenize(x)
    model.tokenize = counted
    return calls


def _assert_same_mu(m1, m2):
    assert m1.keys() == m2.keys()
    for name in m1:
        np.testing.assert_array_equal(m1[name], m2[name])


@pytest.mark.parametrize("arch", ["raster", "next-scale"])
def test_cache_gives_identical_mu_and_a_hit_tokenizes_nothing(arch, tmp_path):
    model = FakeIAR(arch=arch, side=4, vocab=8, n_classes=2, hidden=5, seed=1)
    K = 2 * (TOKEN_BATCH // 3) + 7  # three tokenizer chunks, the last one short
    images, labels, ids = _images(K), torch.arange(K) % 2, np.arange(1000, 1000 + K)
    cfg = UnitMemConfig(augment=AugmentConfig(n_aug=3), batch_size=50)  # batches straddle the chunks
    calls = _counting(model)
    plain = activation_means(model, images, labels, ids, cfg, progress=False)
    assert calls == {"n": 3, "images": 3 * K}  # all augmentations of a chunk in one call
    miss = activation_means(model, images, labels, ids, cfg, progress=False, token_cache=tmp_path)
    (cache,) = tmp_path.iterdir()
    assert cache.name.startswith("unitmem_tokens_") and calls["n"] == 6
    hit = activation_means(model, images, labels, ids, cfg, progress=False, token_cache=tmp_path)
    assert calls["n"] == 6  # the hit tokenized nothing
    other_batches = activation_means(model, images, labels, ids, UnitMemConfig(augment=cfg.augment, batch_size=7),
                                     progress=False, token_cache=tmp_path)
    assert calls["n"] == 6 and list(tmp_path.iterdir()) == [cache]  # the batch size is not part of the key
    _assert_same_mu(plain, miss)
    _assert_same_mu(plain, hit)
    for name in plain:  # another batching sums in another order: equal up to rounding
        np.testing.assert_allclose(other_batches[name], plain[name], rtol=1e-12)


def test_changing_tokenizer_augmentations_ids_or_pixels_misses_and_model_weights_hit(tmp_path):
    model = _tiny_real()
    K = 6
    images, labels, ids = _images(K, side=16), torch.arange(K) % 3, np.arange(K)
    cfg = UnitMemConfig(augment=AugmentConfig(n_aug=2), batch_size=4)
    calls = _counting(model)

    def run(images=images, ids=ids, cfg=cfg):
        before = calls["n"]
        mu = activation_means(model, images, labels, ids, cfg, progress=False, token_cache=tmp_path)
        return mu, calls["n"] > before

    base, tokenized = run()
    assert tokenized and len(list(tmp_path.iterdir())) == 1
    with torch.no_grad():  # a later checkpoint of the same run: other transformer weights, same tokenizer
        next(model.parameters()).add_(0.5)
    later, tokenized = run()
    assert not tokenized and any(not np.array_equal(later[n], base[n]) for n in base)
    changed_pixels = images.clone()
    changed_pixels[2, 1, 5, 5] += 1e-3
    misses = {"pixels": lambda: run(images=changed_pixels), "ids": lambda: run(ids=ids[[1, 0, 2, 3, 4, 5]]),
              "augment seed": lambda: run(cfg=UnitMemConfig(augment=AugmentConfig(n_aug=2, seed=1), batch_size=4)),
              "augment jitter": lambda: run(cfg=UnitMemConfig(augment=AugmentConfig(n_aug=2, jitter=0.1),
                                                              batch_size=4))}
    for n_files, (what, miss) in enumerate(misses.items(), start=2):
        assert miss()[1], what
        assert len(list(tmp_path.iterdir())) == n_files, what
    with torch.no_grad():
        model.tokenizer.codebook[0].add_(1e-4)
    assert run()[1]  # another tokenizer
    assert len(list(tmp_path.iterdir())) == len(misses) + 2


def test_interrupted_pass_with_a_cache_resumes_and_writes_the_whole_cache(tmp_path):
    model = FakeIAR(arch="next-scale", side=4, vocab=8, n_classes=2, hidden=5, seed=2)
    chunk = TOKEN_BATCH // 3  # images per tokenizer call
    K = 2 * chunk + 5
    images, labels, ids = _images(K), torch.arange(K) % 2, np.arange(K)
    cfg = UnitMemConfig(augment=AugmentConfig(n_aug=3), batch_size=K // 5)
    assert 3 * cfg.batch_size > chunk  # the resumed pass skips the whole first chunk
    plain = activation_means(model, images, labels, ids, cfg, progress=False)
    forward, calls = model.teacher_forced_logits, {"n": 0}

    def crash_in_fourth_batch(tokens, y):
        calls["n"] += 1
        if calls["n"] == 3 * 3 + 1:
            raise KeyboardInterrupt
        return forward(tokens, y)

    state, cache = tmp_path / "state", tmp_path / "tokens"
    model.teacher_forced_logits = crash_in_fourth_batch
    with pytest.raises(KeyboardInterrupt):
        activation_means(model, images, labels, ids, cfg, progress=False, checkpoint=state, token_cache=cache)
    model.teacher_forced_logits = forward
    assert not cache.exists()  # never a partial cache
    resumed = activation_means(model, images, labels, ids, cfg, progress=False, checkpoint=state, token_cache=cache)
    _assert_same_mu(plain, resumed)
    tokenized = _counting(model)
    hit = activation_means(model, images, labels, ids, cfg, progress=False, token_cache=cache)
    assert tokenized["n"] == 0  # the resumed pass also tokenized the images it skipped, so the cache is whole
    _assert_same_mu(plain, hit)


def test_damaged_token_cache_is_named(tmp_path):
    model = FakeIAR(arch="raster", side=4, vocab=8, n_classes=2, hidden=5)
    K = 5
    images, labels, ids = _images(K), torch.arange(K) % 2, np.arange(K)
    cfg = UnitMemConfig(augment=AugmentConfig(n_aug=2))
    activation_means(model, images, labels, ids, cfg, progress=False, token_cache=tmp_path)
    (path,) = tmp_path.iterdir()
    good = path.read_bytes()
    with np.load(path, allow_pickle=False) as z:
        key, tokens = z["key"], z["tokens"]
    damages = {"truncated": lambda: path.write_bytes(good[:len(good) // 2]),
               "no tokens": lambda: np.savez(path, key=key),
               "wrong shape": lambda: np.savez(path, key=key, tokens=tokens[:-1]),
               "out of range": lambda: np.savez(path, key=key, tokens=tokens + 8)}
    for what, damage in damages.items():
        damage()
        with pytest.raises(UsageError, match=f"damaged UnitMem token cache {path}"):
            activation_means(model, images, labels, ids, cfg, progress=False, token_cache=tmp_path)
    np.savez(path, key=np.array('{"another": "key"}'), tokens=tokens)  # not these tokens: recomputed, replaced
    activation_means(model, images, labels, ids, cfg, progress=False, token_cache=tmp_path)
    with np.load(path, allow_pickle=False) as z:
        assert str(z["key"]) == str(key) and np.array_equal(z["tokens"], tokens)
