"""Trainable denoisers: one entry point over the registry of denoiser families (memlab.diffusion.networks:
mixture, mlp, unet, dit). `build(ModelConfig, dataset)` checks the config against the data and builds the
family's `Denoiser`; `init_params` starts one seed. The names below stay importable from here."""

from __future__ import annotations

from typing import Any

from memlab.diffusion import networks
from memlab.diffusion.model_config import ModelConfig
from memlab.diffusion.networks.denoiser import AUTODIFF_BLOCK_FLOATS, Denoiser, param_count  # noqa: F401
from memlab.diffusion.networks.layers import time_embedding  # noqa: F401
from memlab.diffusion.networks.mixture import (PMEM_VARIANCE, GMMMixture, TemplateMixture,  # noqa: F401
                                               pmem_indices, rank1_factor)
from memlab.diffusion.networks.mlp import AdaLNBlock, ResidualMLP  # noqa: F401


def build(cfg: ModelConfig, dataset) -> Denoiser:
    """The denoiser `cfg` names, shaped for `dataset` (a synthetic.Dataset); a config the data cannot take
    (an image network on the GMM, a patch larger than the image) is a UsageError."""
    networks.spec(cfg.family).check_data(cfg, tuple(dataset.shape))
    return networks.load(cfg.family).build(cfg, dataset)


def build_denoiser(model: str, size: int, depth: int, predict: str, dataset, **options) -> Denoiser:
    """`build` from loose fields (options: the family-only fields such as patch and heads)."""
    return build(ModelConfig(family=model, size=size, depth=depth, predict=predict, **options), dataset)


def init_params(den: Denoiser, init: str, dataset, seed: int) -> dict[str, Any]:
    """Initial parameters of one seed: 'pmem' starts a mixture exactly at theta_pmem(M), 'random' draws
    around the data; neural nets always start from flax's random initialisation."""
    return networks.load(den.family).init(den, init, dataset, seed)
