"""Random keys of the training, evaluation and sampling code.

The 'rbg' implementation: its bits come from XLA's RngBitGenerator, which compiles several times faster
than threefry on CPU (compilation, not running, dominates small runs), while split and fold_in still use
threefry, so per-sample streams fold_in(key, i) stay independent. Keys are stored as raw key data
(uint32) in checkpoints and wrapped back inside jitted code."""

import jax

IMPL = "rbg"
# fold_in tags of one seed's key: one stream per purpose
TAG_TRAIN, TAG_EVAL, TAG_SAMPLE = 1, 2, 3


def seed_key(seed: int, tag: int):
    return jax.random.fold_in(jax.random.key(seed, impl=IMPL), tag)


def key_data(key):
    return jax.random.key_data(key)


def wrap(data):
    return jax.random.wrap_key_data(data, impl=IMPL)
