"""The mixture estimators (flax): M trainable components whose output is the exact posterior mean (x0) of
that mixture under the VP process; on the GMM, M means and one shared variance, on the colored templates,
M templates, M colour means and one shared colour variance, on the low-rank GMM, M means, M rank-r factors
(r: the data's rank) and one shared isotropic variance. Uniform fixed weights. Size on the M axis: M."""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from memlab.diffusion.denoisers import gmm_posterior_mean, template_posterior_mean
from memlab.diffusion.lowrank import lowrank_posterior_mean
from memlab.diffusion.mixture_loss import gmm_weighted_sq_error
from memlab.diffusion.networks.denoiser import Denoiser, Family

PMEM_VARIANCE = 1e-6  # "pmem" starts the shared variance here, so training starts at theta_pmem(M)


class GMMMixture(nn.Module):
    """M trainable means, one shared isotropic variance (= std^2, positive by construction).
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
    """M trainable templates (P pixels), M colour means (C channels) and one shared colour variance."""

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


class LowRankMixture(nn.Module):
    """M trainable means, M factors F_m (d x r: component covariance F_m F_m^T + tau^2 I) and one shared
    isotropic variance tau^2 = std^2."""

    size: int
    dim: int
    rank: int

    @nn.compact
    def __call__(self, x_BxD, t_B):
        means_MxD = self.param("means_MxD", nn.initializers.normal(1.0), (self.size, self.dim))
        factors_MxDxR = self.param("factors_MxDxR", nn.initializers.normal(1.0), (self.size, self.dim, self.rank))
        std = self.param("std", nn.initializers.ones, ())
        logw_M = jnp.zeros((self.size,), x_BxD.dtype)
        return lowrank_posterior_mean(x_BxD, t_B, means_MxD, factors_MxDxR, std**2, logw_M)


PMEM_FACTOR = 1e-3  # "pmem" factors start this small (not 0: F = 0 is a stationary point of the loss)


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


class MixtureFamily(Family):
    name = "mixture"

    def build(self, cfg, dataset) -> Denoiser:
        """The template mixture on the templates, the GMM mixture elsewhere. Activation estimate: one B x M
        logit row beside the d-wide input, M + d; the GMM's loss is its fused blocked loss-and-gradient."""
        width = cfg.size + dataset.dim
        if dataset.name == "templates":
            c, h, w = dataset.shape
            return Denoiser(TemplateMixture(cfg.size, h * w, c), cfg.predict, "x0", self.name, width)
        if dataset.name == "lowrank-gmm":
            rank = dataset.truth.rank
            return Denoiser(LowRankMixture(cfg.size, dataset.dim, rank), cfg.predict, "x0", self.name,
                            cfg.size * (rank + 1) + dataset.dim, row_floats=cfg.size * dataset.dim)
        return Denoiser(GMMMixture(cfg.size, dataset.dim), cfg.predict, "x0", self.name, width,
                        fused_loss=gmm_weighted_sq_error)

    def init(self, den: Denoiser, init: str, dataset, seed: int) -> dict[str, Any]:
        """'pmem': components at M distinct training points with variance 1e-6, i.e. exactly theta_pmem(M);
        'random': means drawn around the data with the data's variance (templates: uniform templates, small
        colours, unit colour variance)."""
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x1A17]))
        train = np.asarray(dataset.train_NxD, np.float64)
        size = den.module.size
        f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
        if isinstance(den.module, LowRankMixture):
            shape = (size, dataset.dim, den.module.rank)
            if init == "pmem":
                return {"means_MxD": f32(train[pmem_indices(len(train), size, rng)]),
                        "factors_MxDxR": f32(PMEM_FACTOR * rng.standard_normal(shape)),
                        "std": f32(math.sqrt(PMEM_VARIANCE))}
            means = train.mean(0) + train.std(0) * rng.standard_normal((size, dataset.dim))
            scale = np.sqrt(train.var(0).mean() / den.module.rank)
            return {"means_MxD": f32(means), "factors_MxDxR": f32(scale * rng.standard_normal(shape)),
                    "std": f32(np.sqrt(train.var(0).mean()))}
        if isinstance(den.module, GMMMixture):
            if init == "pmem":
                return {"means_MxD": f32(train[pmem_indices(len(train), size, rng)]),
                        "std": f32(math.sqrt(PMEM_VARIANCE))}
            means = train.mean(0) + train.std(0) * rng.standard_normal((size, dataset.dim))
            return {"means_MxD": f32(means), "std": f32(np.sqrt(train.var(0).mean()))}
        if init == "pmem":
            temps, colours = rank1_factor(train[pmem_indices(len(train), size, rng)], den.module.channels)
            return {"templates_MxP": f32(temps), "colour_means_MxC": f32(colours),
                    "colour_std": f32(math.sqrt(PMEM_VARIANCE))}
        return {"templates_MxP": f32(rng.uniform(0, 1, (size, den.module.pixels))),
                "colour_means_MxC": f32(0.1 * rng.standard_normal((size, den.module.channels))),
                "colour_std": f32(1.0)}

    def diagnostics(self, params, dataset) -> dict:
        """Where the learned components sit: near a true mean, a training point, or neither."""
        from memlab.metrics.mixture import mixture_diagnostics

        numpy_params = {k: np.asarray(v) for k, v in params.items()}
        return {"mixture": mixture_diagnostics(numpy_params, dataset.train_NxD, dataset.truth)}


FAMILY = MixtureFamily()
