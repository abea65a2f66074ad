"""Denoiser families behind one registry: `mixture` (the GMM and colored-template mixture estimators),
`mlp`, `unet` and `dit`. Each family states here, without loading any framework (the CLI and the sweep
planner check configs before JAX is imported), its default learning rate, what its size knobs mean, which
data it needs and its size on the crossover's M axis; its implementation (flax) is the `FAMILY` object of
its own module, loaded by `load(name)`: build a `Denoiser` (which carries its loss and its activation
estimate), initialise parameters.

The M axis. theta_pmem(M) stores M training points, i.e. M*d numbers. A mixture estimator of M components
is M itself. A neural denoiser with P parameters on data of dimension d is put at M = P / d: the number
of training points it could store in as many numbers. This is a convention for setting neural nets beside
the crossover, not a claim that they memorize like theta_pmem."""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Callable

from memlab.errors import FieldError, UsageError


def _image_side(shape) -> int:
    return min(shape[1], shape[2])


def _check_unet(cfg, shape) -> None:
    most = int(math.log2(_image_side(shape)))
    if cfg.depth > most:
        raise FieldError("depth", f"must be <= {most} for {shape[1]}x{shape[2]} images (each U-Net level "
                                  f"halves them), got {cfg.depth}")


def _check_dit_config(cfg) -> None:
    if cfg.size % cfg.heads:
        raise FieldError("heads", f"must divide size ({cfg.size}), got {cfg.heads}")


def _check_dit(cfg, shape) -> None:
    if cfg.patch > _image_side(shape):
        raise FieldError("patch", f"must be <= {_image_side(shape)} (the smaller image side), got {cfg.patch}")


@dataclass(frozen=True)
class FamilySpec:
    """The framework-free facts of one family; its implementation is networks/<name>.py. lr: default peak
    learning rate; size, depth: what the knobs mean; `images`: needs image-shaped data (C, H, W);
    `options`: ModelConfig fields that only this family reads (None elsewhere), with their defaults;
    `m_is_size`: the size knob is M itself (else M = parameter count / d)."""

    name: str
    lr: float
    size: str
    depth: str
    images: bool = False
    options: tuple[tuple[str, int], ...] = ()
    m_is_size: bool = False
    check_config: Callable | None = None  # (ModelConfig) -> None; raises FieldError
    check_shape: Callable | None = None  # (ModelConfig, sample shape) -> None; raises FieldError

    def effective_size(self, size: int, param_count: int, dim: int) -> float:
        """M on the crossover's axis: the size knob for a mixture, parameter count / d for a neural net."""
        return float(size) if self.m_is_size else float(param_count) / dim

    def check_data(self, cfg, shape: tuple[int, ...]) -> None:
        """Refuse a model config that cannot run on samples of `shape` (before anything is written)."""
        if self.images and len(shape) != 3:
            raise UsageError(f"model {self.name!r} needs image-shaped data (dataset 'templates'), got samples "
                             f"of shape {tuple(shape)}")
        if self.check_shape is not None:
            self.check_shape(cfg, shape)


# Adam moves each parameter by about lr per step: the mixture's means need 1e-2 to leave their start within
# the default steps (docs/training.md); the MLP trains best at 1e-3; U-Net and DiT take the MLP's (not tuned).
FAMILIES = {f.name: f for f in (
    FamilySpec("mixture", 1e-2, "M components", "unused", m_is_size=True),
    FamilySpec("mlp", 1e-3, "width", "residual blocks"),
    FamilySpec("unet", 1e-3, "base channels", "resolution levels", images=True,
               check_shape=_check_unet),
    FamilySpec("dit", 1e-3, "width", "transformer blocks", images=True,
               options=(("patch", 3), ("heads", 4)), check_config=_check_dit_config,
               check_shape=_check_dit),
)}
NAMES = tuple(FAMILIES)


def spec(name: str) -> FamilySpec:
    if name not in FAMILIES:
        raise UsageError(f"unknown model {name!r}; allowed: {', '.join(NAMES)}")
    return FAMILIES[name]


def load(name: str):
    """The family's implementation (imports flax): an object with build(cfg, dataset) -> Denoiser and
    init(den, init, dataset, seed) -> params."""
    return importlib.import_module(f"{__name__}.{spec(name).name}").FAMILY
