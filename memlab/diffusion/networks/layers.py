"""Pieces the neural families share: the sinusoidal time embedding, the time-conditioning MLP and adaLN
modulation. The helpers create their layers inside the calling module (flax linen compact scope), so a
module that uses them has the parameter names it would have with the layers written inline."""

from __future__ import annotations

import math

import flax.linen as nn
import jax.numpy as jnp

TIME_FEATURES = 64  # sinusoidal features of t fed to the conditioning MLP


def time_embedding(t_B, dim: int):
    """Sinusoidal features of 1000 t (DDPM style), B x dim."""
    half = dim // 2
    freqs = jnp.exp(-math.log(10_000.0) * jnp.arange(half) / half)
    ang_BxH = 1000.0 * t_B[:, None] * freqs[None]
    return jnp.concatenate([jnp.sin(ang_BxH), jnp.cos(ang_BxH)], axis=1)


def time_conditioning(t_B, width: int, features: int = TIME_FEATURES):
    """c_BxW = silu(Dense(silu(Dense(embedding(t))))): 2 dense layers, (features + 1) W + (W + 1) W
    parameters. Call inside a compact module."""
    return nn.silu(nn.Dense(width)(nn.silu(nn.Dense(width)(time_embedding(t_B, features)))))


def modulate(h, shift, scale):
    """adaLN: a LayerNorm without its own parameters, then the time-dependent scale and shift (which
    broadcast over h's middle axes)."""
    return nn.LayerNorm(use_scale=False, use_bias=False)(h) * (1 + scale) + shift


def to_image(x_BxD, shape: tuple[int, int, int], multiple: int):
    """Flattened samples (C, H, W order) -> B x H' x W' x C, zero-padded at the bottom and right so that
    H' and W' are multiples of `multiple`."""
    c, h, w = shape
    img = x_BxD.reshape(-1, c, h, w).transpose(0, 2, 3, 1)
    pad_h, pad_w = -h % multiple, -w % multiple
    return jnp.pad(img, ((0, 0), (0, pad_h), (0, pad_w), (0, 0))) if pad_h or pad_w else img


def from_image(img_BxHxWxC, shape: tuple[int, int, int]):
    """The inverse of `to_image`: crop the padding, flatten in (C, H, W) order."""
    c, h, w = shape
    return img_BxHxWxC[:, :h, :w, :].transpose(0, 3, 1, 2).reshape(-1, c * h * w)


def padded(side: int, multiple: int) -> int:
    return side + (-side % multiple)
