"""Augmentations for tiny images (8x8 to 32x32), as UnitMem needs: small integer shifts (edge pixels
repeated), horizontal flips and colour jitter (brightness, contrast, a small per-channel shift).

Randomness is explicit: augmentation `a` of the image with id `i` depends only on (seed, i, a), never on
the batch it lands in or its position there. Augmentation 0 is the identity, so A = 1 means "no augmentation".
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
    """Augmentation number `a` of each image (pixels in [0, 1] in and out), the whole batch at once; only
    the parameters are drawn per image, from that image's own generator."""
    if a == 0:
        return images_Bx3xHxW
    B, C, H, W = images_Bx3xHxW.shape
    if len(image_ids) != B:
        raise ValueError(f"{B} images but {len(image_ids)} image ids")
    dy, dx, flip, bright, contrast, shift = zip(*(_params(cfg, i, a) for i in image_ids))
    dev, dtype = images_Bx3xHxW.device, images_Bx3xHxW.dtype
    s = cfg.max_shift
    padded = F.pad(images_Bx3xHxW, (s, s, s, s), mode="replicate") if s else images_Bx3xHxW
    rows_BxH = s + torch.tensor(dy, device=dev)[:, None] + torch.arange(H, device=dev)
    cols_BxW = s + torch.tensor(dx, device=dev)[:, None] + torch.arange(W, device=dev)
    cols_BxW = torch.where(torch.tensor(flip, device=dev)[:, None], cols_BxW.flip(1), cols_BxW)
    x = padded[torch.arange(B, device=dev)[:, None, None, None], torch.arange(C, device=dev)[None, :, None, None],
               rows_BxH[:, None, :, None], cols_BxW[:, None, None, :]]
    # each image's own mean, summed in float64: exact for any realistic pixels, so no summation order (which
    # may depend on the batch) can change it
    mean_B = (x.double().sum(dim=(1, 2, 3)) / (C * H * W)).to(dtype)[:, None, None, None]
    contrast_B = torch.tensor(contrast, dtype=dtype, device=dev)[:, None, None, None]
    bright_B = torch.tensor(bright, dtype=dtype, device=dev)[:, None, None, None]
    shift_Bx3 = torch.as_tensor(np.stack(shift), dtype=dtype, device=dev)[:, :, None, None]
    return ((x - mean_B) * contrast_B + mean_B + bright_B + shift_Bx3).clamp(0.0, 1.0)
