"""TrainConfig: what `memlab train` and sweeps train, as a frozen dataclass. No framework imports, so the
CLI can build and validate it before JAX is loaded (re-exported by memlab.diffusion.run)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields

from memlab.errors import UsageError, check_choice, check_float, check_int
from memlab.options import option

MODELS = ("mixture", "mlp")
WEIGHTING_NAMES = ("eps", "x0-uniform", "elbo", "min-snr", "v")  # keys of objective.WEIGHTINGS
PREDICTS = ("eps", "x0")
INITS = ("pmem", "random")
SEED_MODES = ("auto", "vmap", "sequential")
SAMPLER_NAMES = ("ddim", "ancestral")  # keys of sample.SAMPLERS
# Adam moves each parameter by about lr per step: the mixture's means need 1e-2 to leave their start within
# the default steps (docs/training.md); the MLP trains best at 1e-3.
LR_DEFAULTS = {"mixture": 1e-2, "mlp": 1e-3}
_LR_SHOWN = ", ".join(f"{m} {v:g}" for m, v in LR_DEFAULTS.items())


def _seeds(text: str):
    """'3' -> 3 seeds; '0,4,7' -> those seeds."""
    try:
        parts = [int(p) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a count or a comma-separated list of integers, got {text!r}") from None
    return parts[0] if len(parts) == 1 and "," not in text else tuple(parts)


def _batch(text: str):
    if text == "full":
        return text  # TrainConfig turns it into None (full batch); None on the command line means "not given"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer or 'full', got {text!r}") from None


@dataclass(frozen=True)
class TrainConfig:
    """One training configuration. Loss units: x0 unless a name says eps."""

    model: str = option("mixture", "denoiser", choices=MODELS)
    size: int = option(16, "M (components) for mixture, width for mlp")
    depth: int = option(2, "residual blocks (mlp only)")
    steps: int = option(2000, "optimizer steps")
    lr: float | None = option(None, "peak learning rate", shown=_LR_SHOWN)  # None: LR_DEFAULTS[model]
    warmup_frac: float = option(0.1, "fraction of the steps with a linear warmup from 0 to lr")
    final_lr: float = option(1e-6, "learning rate at the last step (linear decay from lr)")
    clip: float = option(1.0, "global gradient-norm clip")
    draws: int = option(16, "noise draws R per training point per step")
    batch: int | None = option(None, "training points per step, or 'full'", parse=_batch, shown="full",
                               metavar="N|full")  # None = full batch
    weighting: str = option("eps", "training objective (eps: the epsilon loss)", choices=WEIGHTING_NAMES)
    predict: str = option("eps", "network output (the mixtures compute x0 in closed form)", choices=PREDICTS)
    init: str = option("pmem", "mixture initialisation (pmem: start at theta_pmem(M)); the mlp starts random",
                       choices=INITS)
    samples: int = option(256, "DDIM samples per seed for the memorization ratio")
    seeds: int | tuple[int, ...] = option(1, "seed count (data seed, +1, ...) or a comma-separated list",
                                          parse=_seeds, metavar="N|S1,S2,...")
    seed_mode: str = option("auto", "how seeds run (auto: vmap on accelerators)", choices=SEED_MODES)
    n_checkpoints: int = option(8, "log-spaced evaluations, step 0 and the last step included",
                                flag="--checkpoints")
    sampler: str = option("ddim", "sampler", choices=SAMPLER_NAMES)
    grid_points: int = option(26, "time-grid points (training, loss evaluation, sampling)", cli=False)
    threshold: float = option(1.0 / 3.0, "memorized when d1 < threshold * d2", shown="1/3")
    eval_draws: int = option(4, "noise draws per point for the per-t losses", cli=False)
    eval_test: int = option(1000, "test points used for the per-t test loss (at most)", cli=False)
    n_boot: int = option(1000, "bootstrap resamples of the memorization ratio", cli=False)

    def __post_init__(self):
        check_choice("model", self.model, MODELS)
        if self.lr is None:
            object.__setattr__(self, "lr", LR_DEFAULTS[self.model])
        check_int("size", self.size, 1)
        check_int("depth", self.depth, 1)
        check_int("steps", self.steps, 0)
        check_float("lr", self.lr, 0.0, lo_open=True)
        check_float("warmup_frac", self.warmup_frac, 0.0, 1.0, hi_open=True)
        check_float("final_lr", self.final_lr, 0.0)
        check_float("clip", self.clip, 0.0, lo_open=True)
        check_int("draws", self.draws, 1)
        if self.batch == "full":
            object.__setattr__(self, "batch", None)
        if self.batch is not None:
            check_int("batch", self.batch, 1)
        check_choice("weighting", self.weighting, WEIGHTING_NAMES)
        check_choice("predict", self.predict, PREDICTS)
        check_choice("init", self.init, INITS)
        check_int("samples", self.samples, 1)
        if isinstance(self.seeds, (list, tuple)):
            if not self.seeds:
                raise UsageError("seeds must be a count >= 1 or a non-empty list of integers >= 0, got []")
            for s in self.seeds:
                check_int("seeds (each)", s, 0)
            if len(set(self.seeds)) != len(self.seeds):
                raise UsageError(f"seeds must be distinct, got {list(self.seeds)}")
            object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        else:
            check_int("seeds", self.seeds, 1)
        check_choice("seed_mode", self.seed_mode, SEED_MODES)
        check_int("n_checkpoints", self.n_checkpoints, 2)
        check_choice("sampler", self.sampler, SAMPLER_NAMES)
        check_int("grid_points", self.grid_points, 2)
        check_float("threshold", self.threshold, 0.0, 1.0, lo_open=True, hi_open=True)
        check_int("eval_draws", self.eval_draws, 1)
        check_int("eval_test", self.eval_test, 1)
        check_int("n_boot", self.n_boot, 10)

    def seed_list(self, data_seed: int = 0) -> tuple[int, ...]:
        return expand_seeds(self.seeds, data_seed)


def expand_seeds(seeds, data_seed: int = 0) -> tuple[int, ...]:
    """The training seeds that `seeds` names: a list as given, a count n as data seed + 0..n-1 (so runs on
    different data draws do not share training seeds)."""
    if isinstance(seeds, (list, tuple)):
        return tuple(int(s) for s in seeds)
    return tuple(data_seed + i for i in range(seeds))


TRAIN_DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}
