"""A small U-Net denoiser (flax) for image-shaped data (templates, digits): `size` base channels, `depth`
resolution levels. Images are zero-padded to a multiple of 2^depth and cropped back.

    3x3 conv (C -> s) -> per level l < depth: ResBlock(c_l), keep as skip, 2x2 average pool
    -> ResBlock(c_depth) -> per level l, from the bottom: 2x nearest upsample, concat skip, ResBlock(c_l)
    -> GroupNorm, SiLU, 3x3 conv (-> C, zero-initialised)

with c_0 = s and c_l = 2 s below. Time enters every ResBlock as a scale and shift after its second
GroupNorm (FiLM), from a 2-layer MLP of width 4 s on the sinusoidal embedding. On the M axis it counts as
parameter count / d."""

from __future__ import annotations

import math

import flax.linen as nn
import jax.numpy as jnp

from memlab.diffusion.networks.denoiser import NET_BLOCK_FLOATS, Denoiser, Family
from memlab.diffusion.networks.layers import TIME_FEATURES, from_image, padded, time_conditioning, to_image

GROUPS = 8  # GroupNorm groups (fewer when they do not divide the channels)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=math.gcd(GROUPS, channels))


def level_channels(size: int, depth: int) -> list[int]:
    """Channels at levels 0..depth (depth: the bottom)."""
    return [size] + [2 * size] * depth


class ResBlock(nn.Module):
    """GroupNorm, SiLU, 3x3 conv (no bias); GroupNorm with a time-dependent scale and shift, SiLU, 3x3 conv
    (zero-initialised: the block starts as its skip path); skip: 1x1 conv when the channels change."""

    channels: int

    @nn.compact
    def __call__(self, h_BxHxWxC, c_BxE):
        c_in = h_BxHxWxC.shape[-1]
        # no bias: the GroupNorm right after removes it (its gradient is 0 up to rounding)
        y = nn.Conv(self.channels, (3, 3), use_bias=False)(nn.silu(_norm(c_in)(h_BxHxWxC)))
        shift, scale = jnp.split(nn.Dense(2 * self.channels)(c_BxE)[:, None, None, :], 2, -1)
        y = _norm(self.channels)(y) * (1 + scale) + shift
        y = nn.Conv(self.channels, (3, 3), kernel_init=nn.initializers.zeros)(nn.silu(y))
        skip = h_BxHxWxC if c_in == self.channels else nn.Conv(self.channels, (1, 1))(h_BxHxWxC)
        return skip + y


class UNet(nn.Module):
    shape: tuple[int, int, int]  # C, H, W of one sample
    size: int
    depth: int
    temb: int = TIME_FEATURES

    @nn.compact
    def __call__(self, x_BxD, t_B):
        chans = level_channels(self.size, self.depth)
        c_BxE = time_conditioning(t_B, 4 * self.size, self.temb)
        h = nn.Conv(chans[0], (3, 3))(to_image(x_BxD, self.shape, 2**self.depth))
        skips = []
        for level in range(self.depth):
            h = ResBlock(chans[level])(h, c_BxE)
            skips.append(h)
            h = nn.avg_pool(h, (2, 2), strides=(2, 2))
        h = ResBlock(chans[self.depth])(h, c_BxE)
        for level in reversed(range(self.depth)):
            h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)
            h = ResBlock(chans[level])(jnp.concatenate([h, skips[level]], axis=-1), c_BxE)
        h = nn.silu(_norm(chans[0])(h))
        out = nn.Conv(self.shape[0], (3, 3), kernel_init=nn.initializers.zeros)(h)
        return from_image(out, self.shape)


def feature_floats(size: int, depth: int, shape) -> int:
    """Floats one row keeps for the backward pass, estimated: a ResBlock at P pixels keeps about
    2 c_in P + 6 c_out P (its norms, activations and convolutions)."""
    chans = level_channels(size, depth)
    pixels = [padded(shape[1], 2**depth) * padded(shape[2], 2**depth) // 4**level for level in range(depth + 1)]
    blocks = [(chans[0] if level == 0 else chans[level - 1], chans[level], pixels[level]) for level in range(depth)]
    blocks.append((chans[depth - 1] if depth else chans[0], chans[depth], pixels[depth]))
    blocks += [(chans[level + 1] + chans[level], chans[level], pixels[level]) for level in range(depth)]
    return sum(2 * c_in * p + 6 * c_out * p for c_in, c_out, p in blocks)


class UNetFamily(Family):
    """On CPU the U-Net trains one dispatched step at a time: XLA's CPU backend runs the convolutions' gradients
    5-7x slower inside a compiled loop (a scan or while) than in a program of one step
    (benchmarks/unet_dispatch.py)."""

    name = "unet"

    def build(self, cfg, dataset) -> Denoiser:
        floats = feature_floats(cfg.size, cfg.depth, dataset.shape)
        return Denoiser(UNet(tuple(dataset.shape), cfg.size, cfg.depth), cfg.predict, cfg.predict, self.name,
                        -(-floats // 4) + dataset.dim, row_floats=floats, block_floats=NET_BLOCK_FLOATS,
                        loop_on_cpu=True)


FAMILY = UNetFamily()
