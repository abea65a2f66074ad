"""Augmentations for tiny images (8x8 to 32x32), as UnitMem needs: small integer shifts (edge pixels
repeated), horizontal flips and colour jitter (brightness, contrast, a small per-channel shift).

Randomness is explicit: augmentation `a` of the image with id `i` depends only on (seed, i, a), never on
the batch it lands in. Augmentation 0 is the identity, so A = 1 means "no augmentation".
"""

from __future__ import annotations

import zlib

import numpy as np
import torch
import torch.nn.functional as F

from memlab.iar.config import AugmentConfig  # noqa: F401  (re-exported API)


def _id_key(image_id) -> int:
    """Stable integer for an image id (ints as they are; strings by CRC32, the same in every process)."""
    if isinstance(image_id, (int, np.integer)):
        return int(image_id)
    return zlib.crc32(str(image_id).encode())


def _params(cfg: AugmentConfig, image_id, a: int) -> tuple[int, int, bool, float, float, np.ndarray]:
    rng = np.random.default_rng([cfg.seed, _id_key(image_id), int(a)])
    dy, dx = (int(v) for v in rng.integers(-cfg.max_shift, cfg.max_shift + 1, size=2))
    flip = bool(cfg.flip and rng.random() < 0.5)
    bright = float(rng.uniform(-cfg.jitter, cfg.jitter))
    contrast = float(1.0 + rng.uniform(-cfg.jitter, cfg.jitter))
    shift_3 = rng.uniform(-cfg.jitter / 2, cfg.jitter / 2, size=3)
    return dy, dx, flip, bright, contrast, shift_3


def augment(images_Bx3xHxW: torch.Tensor, image_ids: np.ndarray | list, a: int,
            cfg: AugmentConfig) -> torch.Tensor:
    """Augmentation number `a` of each image (pixels in [0, 1] in and out)."""
    if a == 0:
        return images_Bx3xHxW
    s = cfg.max_shift
    padded = F.pad(images_Bx3xHxW, (s, s, s, s), mode="replicate") if s else images_Bx3xHxW
    H, W = images_Bx3xHxW.shape[-2:]
    out = torch.empty_like(images_Bx3xHxW)
    for b, image_id in enumerate(image_ids):
        dy, dx, flip, bright, contrast, shift_3 = _params(cfg, image_id, a)
        x_3xHxW = padded[b, :, s + dy:s + dy + H, s + dx:s + dx + W]
        if flip:
            x_3xHxW = x_3xHxW.flip(-1)
        mean = x_3xHxW.mean()
        x_3xHxW = (x_3xHxW - mean) * contrast + mean + bright
        out[b] = x_3xHxW + torch.as_tensor(shift_3, dtype=x_3xHxW.dtype)[:, None, None]
    return out.clamp(0.0, 1.0)
