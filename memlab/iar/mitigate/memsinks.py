"""MemSinks (Ghosal, Maini, Raghunathan, "Memorization Sinks: Isolating Memorization during LLM Training",
ICML 2025), for IAR models: in every MLP a share of the hidden units are *sinks*. During training an image's
id switches on its own subset of the sinks in every block (the same subset at every repetition: the copies of
a planted duplicate share one id); the other, *shared*, units are always on. Evaluated models have the sinks
off, so what only the sinks carry (the per-image content) leaves with them.

The subset is a function of the id alone, computed when needed, never stored per image: a keyed BLAKE2b hash
of (id, block) seeds a SplitMix64 counter over the sink indices, and the image's sinks are the
`n_active(n, active)` indices with the smallest hashes. Pure integer arithmetic: the same masks in every
process, on every platform and torch or numpy version (Python's salted `hash()` is not used).

The switch lives on the model's sink modules (`layers.SinkAct.gate`): "off" (the state of every freshly built
or loaded model, and what every evaluation path sees without knowing about sinks), "on" (diagnosis: every sink
at its expected training gate, `active`, like dropout at test time; no evaluation path knows image ids, so the
per-image masks cannot be used there) and per-image masks inside `training_masks`.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from typing import Iterator, Sequence

import numpy as np
import torch

from memlab.errors import UsageError
from memlab.iar.interface import IARModel
from memlab.iar.models.layers import SinkAct, n_active

SINK_MODES = ("off", "on")  # what a caller may switch to; training masks are set by `training_masks`
SINK_SUFFIX = "_sink"  # unit-layer names of the sinks: block.3.mlp_sink beside the shared block.3.mlp
_HASH_KEY = b"memlab-memsinks-v1"
_M64 = (1 << 64) - 1

__all__ = ["SINK_MODES", "group_id", "n_active", "sink_mask", "masks", "sink_layers", "has_sinks", "set_sinks",
           "sinks", "sink_state", "training_masks"]


def group_id(image_id: str) -> str:
    """The id that picks an image's sinks: a planted copy `<id>#copy<r>` shares its original's."""
    return str(image_id).split("#copy")[0]


def _seed(image_id: str, layer: int) -> int:
    msg = f"{image_id}\x00{int(layer)}".encode("utf-8")
    return int.from_bytes(hashlib.blake2b(msg, digest_size=8, key=_HASH_KEY).digest(), "little")


def _splitmix64_U(seed: int, n: int) -> np.ndarray:
    """SplitMix64 outputs for counters 1..n after `seed` (uint64 arithmetic wraps modulo 2**64)."""
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def sink_mask(image_id: str, layer: int, n_sinks: int, active: float) -> np.ndarray:
    """Bool n_sinks: the sinks that image `image_id` (its group id: copies share it) switches on in block
    `layer`; exactly `n_active(n_sinks, active)` of them."""
    gid = group_id(image_id)
    order = np.argsort(_splitmix64_U(_seed(gid, layer), n_sinks), kind="stable")
    mask = np.zeros(n_sinks, dtype=bool)
    mask[order[: n_active(n_sinks, active)]] = True
    return mask


def masks(image_ids: Sequence[str], layer: int, n_sinks: int, active: float) -> torch.Tensor:
    """Float B x n_sinks, 1 where row b's image switches a sink on in block `layer`, else 0."""
    return torch.from_numpy(np.stack([sink_mask(i, layer, n_sinks, active) for i in image_ids]).astype(np.float32))


def sink_layers(model: IARModel) -> dict[int, SinkAct]:
    """Block index -> that block's sink module, from the model's unit layers (empty without sinks)."""
    return {spec.block: spec.module for name, spec in model.units().items()
            if name.endswith(SINK_SUFFIX) and isinstance(spec.module, SinkAct)}


def has_sinks(model: IARModel) -> bool:
    return bool(sink_layers(model))


def sink_state(model: IARModel) -> str | None:
    """'off', 'on', 'train' (per-image masks set) or None (no sinks)."""
    states = {m.state() for m in sink_layers(model).values()}
    if not states:
        return None
    return states.pop() if len(states) == 1 else "mixed"


def set_sinks(model: IARModel, mode: str) -> None:
    """Switch every sink off (the evaluated model) or on at its expected gate (diagnosis)."""
    if mode not in SINK_MODES:
        raise UsageError(f"unknown sink mode {mode!r}; allowed: {', '.join(SINK_MODES)}")
    layers = sink_layers(model)
    if mode == "on" and not layers:
        raise UsageError("--sinks on needs a MemSinks run: this model has no memorization sinks (it was trained "
                         "without --memsinks)")
    for m in layers.values():
        m.gate = 0.0 if mode == "off" else float(m.active)


@contextmanager
def _restoring(model: IARModel) -> Iterator[dict[int, SinkAct]]:
    layers = sink_layers(model)
    saved = {i: m.gate for i, m in layers.items()}
    try:
        yield layers
    finally:
        for i, m in layers.items():
            m.gate = saved[i]


@contextmanager
def sinks(model: IARModel, mode: str) -> Iterator[None]:
    """`set_sinks(model, mode)` for the duration of the block; the previous gates come back afterwards."""
    with _restoring(model):
        set_sinks(model, mode)
        yield


@contextmanager
def training_masks(model: IARModel, image_ids: Sequence[str]) -> Iterator[None]:
    """Within the block, row b of every forward pass uses the sinks of image_ids[b] (a no-op for a model
    without sinks). The gates are restored afterwards, also when the body raises; a backward pass after the
    block still sees the masks (autograd keeps them)."""
    with _restoring(model) as layers:
        for i, m in layers.items():
            m.gate = masks(image_ids, i, m.n_units, m.active)[:, None, :]  # B x 1 x U: the same at every position
        yield
