"""The time-conditioned residual MLP denoiser (flax) with adaLN-Zero time conditioning; width (`size`) and
depth are its size knobs; on the M axis it counts as parameter count / d."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from memlab.diffusion.networks.denoiser import Denoiser, Family
from memlab.diffusion.networks.layers import TIME_FEATURES, modulate, time_conditioning


class AdaLNBlock(nn.Module):
    """Residual MLP block; time enters by adaptive LayerNorm (shift, scale) and a zero-initialised gate
    (adaLN-Zero, as in DiT), so every block starts as the identity."""

    width: int

    @nn.compact
    def __call__(self, h_BxW, c_BxE):
        shift, scale, gate = jnp.split(nn.Dense(3 * self.width, kernel_init=nn.initializers.zeros)(c_BxE), 3, -1)
        y = modulate(h_BxW, shift, scale)
        y = nn.Dense(2 * self.width)(y)
        y = nn.Dense(self.width)(nn.gelu(y))
        return h_BxW + gate * y


class ResidualMLP(nn.Module):
    """Its raw output is epsilon or x0 depending on the Denoiser's `predict`."""

    dim: int
    width: int
    depth: int
    temb: int = TIME_FEATURES

    @nn.compact
    def __call__(self, x_BxD, t_B):
        c_BxE = time_conditioning(t_B, self.width, self.temb)
        h = nn.Dense(self.width)(x_BxD)
        for _ in range(self.depth):
            h = AdaLNBlock(self.width)(h, c_BxE)
        shift, scale = jnp.split(nn.Dense(2 * self.width, kernel_init=nn.initializers.zeros)(c_BxE), 2, -1)
        return nn.Dense(self.dim, kernel_init=nn.initializers.zeros)(modulate(h, shift, scale))


class MLPFamily(Family):
    name = "mlp"

    def build(self, cfg, dataset) -> Denoiser:
        """Activation estimate: width + d per row (measured against the seed modes, train.py)."""
        return Denoiser(ResidualMLP(dataset.dim, cfg.size, cfg.depth), cfg.predict, cfg.predict, self.name,
                        cfg.size + dataset.dim)


FAMILY = MLPFamily()
