"""CrossoverConfig: what `memlab crossover predict` computes, as a frozen dataclass. No framework imports,
so the CLI builds and validates it before JAX is loaded (re-exported by memlab.crossover.predict)."""

from __future__ import annotations

from dataclasses import dataclass

from memlab.config import DataConfig
from memlab.crossover.weighting import parse_weighting
from memlab.errors import FieldError, UsageError, check_choice, check_float, check_int
from memlab.options import option


@dataclass(frozen=True)
class CrossoverConfig:
    weighting: str | tuple[float, ...] = option(
        "x0-uniform", "loss weighting: x0-uniform, eps (psi_t: the epsilon objective), elbo, min-snr, v, or a "
                      "comma-separated list of one weight per noise level", parse=str, metavar="NAME|W1,W2,...")
    draws: int = option(100, "noise draws per training point and noise level")
    repeats: int = option(8, "independent nested-subset permutations (the draws are dealt out among them)")
    grid: int = option(50, "number of model sizes M between 1 and N")
    grid_spacing: str = option("linear", "spacing of the size grid", choices=("linear", "log"))
    time_points: int = option(26, "noise levels of the time grid", cli=False)
    bootstrap: int = option(1000, "bootstrap replicates of the interval")
    seed: int = option(0, "seed of the draws and permutations (the data seed on the command line)")
    x64: bool = option(False, "compute in float64 (scoped to this prediction)")

    def __post_init__(self):
        for name in ("draws", "repeats", "grid", "time_points", "bootstrap"):
            check_int(name, getattr(self, name), 1)
        check_int("seed", self.seed, 0)
        check_choice("grid_spacing", self.grid_spacing, ("linear", "log"))
        if self.repeats > self.draws:
            raise FieldError("repeats", f"must be <= draws ({self.draws}), got {self.repeats}")
        if isinstance(self.weighting, str):
            object.__setattr__(self, "weighting", parse_weighting(self.weighting, self.time_points))
        elif len(self.weighting) != self.time_points:
            raise FieldError("weighting", f"list must have {self.time_points} values, got {len(self.weighting)}")
        if not isinstance(self.weighting, str):
            for w in self.weighting:
                check_float("weighting (each weight)", w, 0.0)
            if not any(self.weighting):
                raise FieldError("weighting", "list must have at least one positive weight")

    def check_against(self, data: DataConfig) -> None:
        if self.grid > data.n_train:
            raise UsageError(f"--grid must be <= --n-train ({data.n_train}), got {self.grid}")
