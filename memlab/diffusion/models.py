"""Trainable denoisers (flax): the mixture estimators (GMM and colored templates) and a time-conditioned
residual MLP with adaLN-Zero time conditioning.

Every model is wrapped in a `Denoiser`, which knows whether its network predicts epsilon or x0 and exposes
both, so losses can always be computed in x0 units (and converted to epsilon units with psi_t).
Shapes: x_BxD (flattened samples), t_B (one time per row)."""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from memlab.diffusion.blocked import blocked_sum
from memlab.diffusion.denoisers import gmm_posterior_mean, template_posterior_mean
from memlab.diffusion.mixture_loss import gmm_weighted_sq_error
from memlab.diffusion.objective import x0_sq_error
from memlab.diffusion.process import eps_from_x0, x0_from_eps

PMEM_VARIANCE = 1e-6  # "pmem" starts the shared variance here, so training starts at theta_pmem(M)
# autodiff models sum their loss over row blocks of about 1 MiB of inputs (rows x d floats): measured best
# on CPU for the MLP (d=50, 4-5k rows per block) and the template mixture (d=192, ~1.4k rows)
AUTODIFF_BLOCK_FLOATS = 2**18


class GMMMixture(nn.Module):
    """M trainable means, one shared isotropic variance (= std^2, positive by construction), uniform
    fixed weights; the output is the exact Bayes denoiser (x0) of that mixture under the VP process.
    std rather than log-variance is the parameter: from the pmem start (1e-6) to a unit variance is one
    unit of std but 14 units of log-variance, i.e. 14x more Adam steps."""

    size: int
    dim: int

    @nn.compact
    def __call__(self, x_BxD, t_B):
        means_MxD = self.param("means_MxD", nn.initializers.normal(1.0), (self.size, self.dim))
        std = self.param("std", nn.initializers.ones, ())
        logw_M = jnp.zeros((self.size,), x_BxD.dtype)
        # gmm_posterior_mean broadcasts a (B, 1) time column: the logits stay one B x M matmul
        # (|x_t|^2 is dropped: it cancels in the softmax).
        return gmm_posterior_mean(x_BxD, t_B[:, None], means_MxD, std**2, logw_M)


class TemplateMixture(nn.Module):
    """M trainable templates (P pixels), M colour means (C channels) and one shared colour variance;
    the output is the exact posterior mean (x0) of that colored-template mixture."""

    size: int
    pixels: int
    channels: int

    @nn.compact
    def __call__(self, x_BxD, t_B):
        temps_MxP = self.param("templates_MxP", nn.initializers.uniform(1.0), (self.size, self.pixels))
        mu_MxC = self.param("colour_means_MxC", nn.initializers.normal(0.1), (self.size, self.channels))
        std = self.param("colour_std", nn.initializers.ones, ())
        logw_M = jnp.zeros((self.size,), x_BxD.dtype)
        return template_posterior_mean(x_BxD, t_B, temps_MxP, mu_MxC, std**2, logw_M)


def time_embedding(t_B, dim: int):
    """Sinusoidal features of 1000 t (DDPM style), B x dim."""
    half = dim // 2
    freqs = jnp.exp(-math.log(10_000.0) * jnp.arange(half) / half)
    ang_BxH = 1000.0 * t_B[:, None] * freqs[None]
    return jnp.concatenate([jnp.sin(ang_BxH), jnp.cos(ang_BxH)], axis=1)


class AdaLNBlock(nn.Module):
    """Residual MLP block; time enters by adaptive LayerNorm (shift, scale) and a zero-initialised gate
    (adaLN-Zero, as in DiT), so every block starts as the identity."""

    width: int

    @nn.compact
    def __call__(self, h_BxW, c_BxE):
        shift, scale, gate = jnp.split(nn.Dense(3 * self.width, kernel_init=nn.initializers.zeros)(c_BxE), 3, -1)
        y = nn.LayerNorm(use_scale=False, use_bias=False)(h_BxW) * (1 + scale) + shift
        y = nn.Dense(2 * self.width)(y)
        y = nn.Dense(self.width)(nn.gelu(y))
        return h_BxW + gate * y


class ResidualMLP(nn.Module):
    """Time-conditioned MLP denoiser: width and depth are the size knobs. Its raw output is epsilon or
    x0 depending on the Denoiser's `predict`."""

    dim: int
    width: int
    depth: int
    temb: int = 64

    @nn.compact
    def __call__(self, x_BxD, t_B):
        c_BxE = nn.Dense(self.width)(nn.silu(nn.Dense(self.width)(time_embedding(t_B, self.temb))))
        c_BxE = nn.silu(c_BxE)
        h = nn.Dense(self.width)(x_BxD)
        for _ in range(self.depth):
            h = AdaLNBlock(self.width)(h, c_BxE)
        shift, scale = jnp.split(nn.Dense(2 * self.width, kernel_init=nn.initializers.zeros)(c_BxE), 2, -1)
        h = nn.LayerNorm(use_scale=False, use_bias=False)(h) * (1 + scale) + shift
        return nn.Dense(self.dim, kernel_init=nn.initializers.zeros)(h)


@dataclasses.dataclass(frozen=True)
class Denoiser:
    """A flax module plus what its raw output means. `native` is what the module computes ('x0' for
    the closed-form mixtures, `predict` for the MLP); `predict` is what the model is said to output."""

    module: nn.Module
    predict: str  # 'eps' | 'x0'
    native: str  # 'eps' | 'x0'

    def x0(self, params, x_BxD, t_B):
        raw = self.module.apply({"params": params}, x_BxD, t_B)
        if self.native == "x0":
            return raw
        return x0_from_eps(x_BxD, raw, t_B[:, None])

    def eps(self, params, x_BxD, t_B):
        raw = self.module.apply({"params": params}, x_BxD, t_B)
        if self.native == "eps":
            return raw
        return eps_from_x0(x_BxD, raw, t_B[:, None])

    def output(self, params, x_BxD, t_B):
        """The model's prediction in its `predict` units."""
        return self.eps(params, x_BxD, t_B) if self.predict == "eps" else self.x0(params, x_BxD, t_B)

    def weighted_sq_error(self, params, x0_BxD, eps_BxD, t_B, w_B):
        """sum_b w_b |x0_hat - x0|^2 at x_t = alpha x0 + sigma eps: the training loss before its mean, summed
        and differentiated over row blocks (`memlab.diffusion.blocked`). The GMM mixture's blocks use the
        hand-written gradient of `mixture_loss`; the other models autodiff each block."""
        return self._blocked_loss(params, x0_BxD, eps_BxD, t_B, w_B)

    def loss_blocks(self, params, rows: int, dim: int) -> int:
        """How many row blocks `weighted_sq_error` runs for `rows` rows of dimension `dim`."""
        return self._blocked_loss.layout(params, jax.ShapeDtypeStruct((rows, dim), jnp.float32))[0]

    @functools.cached_property
    def _blocked_loss(self):
        if isinstance(self.module, GMMMixture):
            return gmm_weighted_sq_error

        def block(params, x0_BxD, eps_BxD, t_B, w_B):
            return jnp.sum(w_B * x0_sq_error(self.x0, params, x0_BxD, eps_BxD, t_B))

        return blocked_sum(block, lambda params, x0_BxD: x0_BxD.shape[1], AUTODIFF_BLOCK_FLOATS)

    def init_random(self, key, dim: int):
        # one jitted init: eager flax init would compile every primitive separately
        init = jax.jit(lambda k: self.module.init(k, jnp.zeros((1, dim)), jnp.full((1,), 0.5))["params"])
        return init(key)


def param_count(params) -> int:
    return int(sum(np.prod(np.shape(a)) for a in jax.tree_util.tree_leaves(params)))


def build_denoiser(model: str, size: int, depth: int, predict: str, dataset) -> Denoiser:
    """The trainable denoiser a TrainConfig names, shaped for `dataset` (a synthetic.Dataset)."""
    if model == "mlp":
        return Denoiser(ResidualMLP(dataset.dim, size, depth), predict, predict)
    if dataset.name == "templates":
        c, h, w = dataset.shape
        return Denoiser(TemplateMixture(size, h * w, c), predict, "x0")
    return Denoiser(GMMMixture(size, dataset.dim), predict, "x0")


def pmem_indices(n: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """M distinct training points (all N, then repeats, when M > N), in a seed-dependent order."""
    reps = -(-m // n)
    return np.concatenate([rng.permutation(n) for _ in range(reps)])[:m]


def rank1_factor(x_MxD, channels: int):
    """Split training images x = c (outer) a into a template a (P, largest entry +1-signed, max |a| = 1)
    and a colour c (C), exactly (every training image is rank one)."""
    m = x_MxD.shape[0]
    x_MxCxP = np.asarray(x_MxD, float).reshape(m, channels, -1)
    u, s, vt = np.linalg.svd(x_MxCxP, full_matrices=False)
    a_MxP = vt[:, 0, :]
    c_MxC = u[:, :, 0] * s[:, :1]
    peak = a_MxP[np.arange(m), np.argmax(np.abs(a_MxP), axis=1)]
    peak = np.where(peak == 0, 1.0, peak)
    return a_MxP / peak[:, None], c_MxC * peak[:, None]


def init_params(den: Denoiser, init: str, dataset, seed: int) -> dict[str, Any]:
    """Initial parameters of one seed. 'pmem' (mixtures): components at M distinct training points with
    variance 1e-6, i.e. exactly theta_pmem(M); 'random': means drawn around the data with the data's
    variance (templates: uniform templates, small colours, unit colour variance). The MLP always starts
    from flax's random initialisation."""
    if isinstance(den.module, ResidualMLP):
        return den.init_random(jax.random.PRNGKey(seed), dataset.dim)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x1A17]))
    train = np.asarray(dataset.train_NxD, np.float64)
    size = den.module.size
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    if isinstance(den.module, GMMMixture):
        if init == "pmem":
            return {"means_MxD": f32(train[pmem_indices(len(train), size, rng)]), "std": f32(math.sqrt(PMEM_VARIANCE))}
        means = train.mean(0) + train.std(0) * rng.standard_normal((size, dataset.dim))
        return {"means_MxD": f32(means), "std": f32(np.sqrt(train.var(0).mean()))}
    if init == "pmem":
        temps, colours = rank1_factor(train[pmem_indices(len(train), size, rng)], den.module.channels)
        return {"templates_MxP": f32(temps), "colour_means_MxC": f32(colours), "colour_std": f32(math.sqrt(PMEM_VARIANCE))}
    return {"templates_MxP": f32(rng.uniform(0, 1, (size, den.module.pixels))),
            "colour_means_MxC": f32(0.1 * rng.standard_normal((size, den.module.channels))), "colour_std": f32(1.0)}
