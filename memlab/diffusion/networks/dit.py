"""A small DiT denoiser (flax) for image-shaped data: patchify (`patch` x `patch` pixels per token, the
image zero-padded to a multiple of it), a linear embedding plus a learned position embedding, `depth`
transformer blocks of width `size` with `heads` heads and adaLN-Zero time conditioning (Peebles & Xie
2023), a final adaLN and a zero-initialised linear head, unpatchify. On the M axis it counts as
parameter count / d. Shape letters: L tokens, W width, E conditioning width (= W)."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from memlab.diffusion.networks.denoiser import NET_BLOCK_FLOATS, Denoiser, Family
from memlab.diffusion.networks.layers import (TIME_FEATURES, from_image, modulate, padded, time_conditioning,
                                              to_image)

MLP_RATIO = 4


class DiTBlock(nn.Module):
    """x + gate1 * attention(adaLN(x)), then + gate2 * MLP(adaLN(x)); the six modulation vectors come from
    a zero-initialised linear map of c, so every block starts as the identity."""

    width: int
    heads: int

    @nn.compact
    def __call__(self, h_BxLxW, c_BxE):
        mod = nn.Dense(6 * self.width, kernel_init=nn.initializers.zeros)(c_BxE)[:, None, :]
        shift1, scale1, gate1, shift2, scale2, gate2 = jnp.split(mod, 6, axis=-1)
        y = nn.MultiHeadDotProductAttention(num_heads=self.heads, qkv_features=self.width)(modulate(h_BxLxW, shift1, scale1))
        h_BxLxW = h_BxLxW + gate1 * y
        y = nn.Dense(self.width)(nn.gelu(nn.Dense(MLP_RATIO * self.width)(modulate(h_BxLxW, shift2, scale2))))
        return h_BxLxW + gate2 * y


def _grid(shape, patch: int) -> tuple[int, int]:
    return padded(shape[1], patch) // patch, padded(shape[2], patch) // patch


class DiT(nn.Module):
    shape: tuple[int, int, int]  # C, H, W of one sample
    size: int
    depth: int
    patch: int
    heads: int
    temb: int = TIME_FEATURES

    @nn.compact
    def __call__(self, x_BxD, t_B):
        c, p = self.shape[0], self.patch
        gh, gw = _grid(self.shape, p)
        img = to_image(x_BxD, self.shape, p)
        b = img.shape[0]
        tok_BxLxF = img.reshape(b, gh, p, gw, p, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, gh * gw, p * p * c)
        pos_LxW = self.param("pos_LxW", nn.initializers.normal(0.02), (gh * gw, self.size))
        h = nn.Dense(self.size)(tok_BxLxF) + pos_LxW[None]
        c_BxE = time_conditioning(t_B, self.size, self.temb)
        for _ in range(self.depth):
            h = DiTBlock(self.size, self.heads)(h, c_BxE)
        shift, scale = jnp.split(nn.Dense(2 * self.size, kernel_init=nn.initializers.zeros)(c_BxE)[:, None, :], 2, -1)
        out = nn.Dense(p * p * c, kernel_init=nn.initializers.zeros)(modulate(h, shift, scale))
        img = out.reshape(b, gh, gw, p, p, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, gh * p, gw * p, c)
        return from_image(img, self.shape)


def feature_floats(size: int, depth: int, patch: int, heads: int, shape) -> int:
    """Floats one row keeps for the backward pass, estimated: per block about (8 + 2 MLP_RATIO) L W for
    norms, q, k, v, attention output and the MLP, plus 2 heads L^2 attention weights; 2 L W outside."""
    gh, gw = _grid(shape, patch)
    tokens = gh * gw
    return depth * ((8 + 2 * MLP_RATIO) * tokens * size + 2 * heads * tokens**2) + 2 * tokens * size


class DiTFamily(Family):
    name = "dit"

    def build(self, cfg, dataset) -> Denoiser:
        floats = feature_floats(cfg.size, cfg.depth, cfg.patch, cfg.heads, dataset.shape)
        return Denoiser(DiT(tuple(dataset.shape), cfg.size, cfg.depth, cfg.patch, cfg.heads), cfg.predict,
                        cfg.predict, self.name, -(-floats // 4) + dataset.dim, row_floats=floats,
                        block_floats=NET_BLOCK_FLOATS)


FAMILY = DiTFamily()
