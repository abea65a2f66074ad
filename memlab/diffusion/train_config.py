"""TrainConfig: what `memlab train` and sweeps train, as a frozen dataclass. No framework imports, so the
CLI can build and validate it before JAX is loaded (re-exported by memlab.diffusion.run)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from memlab.errors import UsageError, check_choice, check_range

MODELS = ("mixture", "mlp")
WEIGHTING_NAMES = ("eps", "x0-uniform", "elbo", "min-snr", "v")  # keys of objective.WEIGHTINGS
PREDICTS = ("eps", "x0")
INITS = ("pmem", "random")
SEED_MODES = ("auto", "vmap", "sequential")
SAMPLER_NAMES = ("ddim", "ancestral")  # keys of sample.SAMPLERS


def _check_int(name: str, value, lo: int, hi: int | None = None) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < lo or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise UsageError(f"{name} must be an integer {rng}, got {value!r}")


def _check_float(name: str, value, lo: float, hi: float, *, lo_open=False, hi_open=False, nan_ok=False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"{name} must be a number, got {value!r}")
    if nan_ok and math.isnan(value):
        return
    if math.isnan(value):
        raise UsageError(f"{name} must be a number in range, got nan")
    check_range(name, value, lo, hi, lo_open=lo_open, hi_open=hi_open)


@dataclass(frozen=True)
class TrainConfig:
    """One training configuration. Loss units: x0 unless a name says eps."""

    model: str = "mixture"  # mixture | mlp
    size: int = 16  # M (components) for mixture, width for mlp
    depth: int = 2  # residual blocks (mlp only)
    steps: int = 2000
    lr: float = 1e-3  # peak learning rate; nan is accepted on purpose (it exercises divergence handling)
    warmup_frac: float = 0.1
    final_lr: float = 1e-6
    clip: float = 1.0  # global gradient-norm clip
    draws: int = 16  # R noise draws per training point per step
    batch: int | None = None  # training points per step; None = full batch
    weighting: str = "eps"  # eps (the epsilon loss) | x0-uniform | elbo | min-snr | v
    predict: str = "eps"  # what the network outputs: eps | x0 (the mixtures compute x0 in closed form)
    init: str = "pmem"  # mixture: pmem (start at theta_pmem(M)) | random; the mlp always starts random
    samples: int = 256  # DDIM samples per seed for the memorization ratio
    seeds: int | tuple[int, ...] = 1  # a count (seeds data_seed, data_seed+1, ...) or explicit seeds
    seed_mode: str = "auto"  # auto | vmap | sequential
    n_checkpoints: int = 8  # log-spaced evaluation points, step 0 and the last step included
    sampler: str = "ddim"  # ddim | ancestral
    grid_points: int = 26  # time grid (training, loss evaluation, sampling)
    threshold: float = 1.0 / 3.0  # memorized when d1 < threshold * d2
    eval_draws: int = 4  # noise draws per point for the per-t losses
    eval_test: int = 1000  # test points used for the per-t test loss (at most)
    n_boot: int = 1000  # bootstrap resamples of the memorization ratio

    def __post_init__(self):
        check_choice("model", self.model, MODELS)
        _check_int("size", self.size, 1)
        _check_int("depth", self.depth, 1)
        _check_int("steps", self.steps, 0)
        _check_float("lr", self.lr, 0.0, math.inf, lo_open=True, hi_open=True, nan_ok=True)
        _check_float("warmup_frac", self.warmup_frac, 0.0, 1.0, hi_open=True)
        _check_float("final_lr", self.final_lr, 0.0, math.inf, hi_open=True)
        _check_float("clip", self.clip, 0.0, math.inf, lo_open=True, hi_open=True)
        _check_int("draws", self.draws, 1)
        if self.batch is not None:
            _check_int("batch", self.batch, 1)
        check_choice("weighting", self.weighting, WEIGHTING_NAMES)
        check_choice("predict", self.predict, PREDICTS)
        check_choice("init", self.init, INITS)
        _check_int("samples", self.samples, 1)
        if isinstance(self.seeds, (list, tuple)):
            if not self.seeds:
                raise UsageError("seeds must be a count >= 1 or a non-empty list of integers >= 0, got []")
            for s in self.seeds:
                _check_int("seeds (each)", s, 0)
            if len(set(self.seeds)) != len(self.seeds):
                raise UsageError(f"seeds must be distinct, got {list(self.seeds)}")
            object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        else:
            _check_int("seeds", self.seeds, 1)
        check_choice("seed_mode", self.seed_mode, SEED_MODES)
        _check_int("n_checkpoints", self.n_checkpoints, 2)
        check_choice("sampler", self.sampler, SAMPLER_NAMES)
        _check_int("grid_points", self.grid_points, 2)
        _check_float("threshold", self.threshold, 0.0, 1.0, lo_open=True, hi_open=True)
        _check_int("eval_draws", self.eval_draws, 1)
        _check_int("eval_test", self.eval_test, 1)
        _check_int("n_boot", self.n_boot, 10)

    def seed_list(self, data_seed: int = 0) -> tuple[int, ...]:
        return expand_seeds(self.seeds, data_seed)


def expand_seeds(seeds, data_seed: int = 0) -> tuple[int, ...]:
    """The training seeds that `seeds` names: a list as given, a count n as data seed + 0..n-1 (so runs on
    different data draws do not share training seeds)."""
    if isinstance(seeds, (list, tuple)):
        return tuple(int(s) for s in seeds)
    return tuple(data_seed + i for i in range(seeds))


TRAIN_DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}
