"""The config of `memlab iar unlearn` (no torch import: the CLI builds it while `memlab --help` stays light).
The losses themselves are in memlab.iar.mitigate.unlearn_losses, registered under the names of METHODS."""

from __future__ import annotations

from dataclasses import dataclass

from memlab.errors import FieldError, check_choice, check_float, check_int
from memlab.options import option

# ga: gradient ascent on the targets; graddiff: ascent + NLL on a retain set; kl: ascent + KL(original || current)
# on the retain set; npo: negative preference optimisation (+ retain NLL); selective: ascent on the targets'
# memorized positions only, descent on their other positions, KL on the retain set (CodeEraser-like)
METHODS = ("ga", "graddiff", "kl", "npo", "selective")


@dataclass(frozen=True)
class UnlearnConfig:
    """Fine-tuning the run's model to forget its targets (the yardstick's T); Adam at a constant learning
    rate, one step = every target + one retain batch, gradients clipped at norm 1."""

    method: str = option("ga", "unlearning loss", choices=METHODS)
    steps: int = option(100, "step budget (stops earlier once no target is extractable)")
    lr: float = option(5e-4, "Adam learning rate (constant, no weight decay)")
    eval_every: int = option(10, "steps between trajectory points (each scored on the yardstick)")
    retain_size: int = option(32, "training images outside the targets in the retain set (a seeded draw; 0: all)")
    retain_batch: int = option(16, "retain images per step (the retain set is cycled in fixed batches)")
    retain_weight: float = option(1.0, "weight of the retain NLL (graddiff, npo)")
    kl_weight: float = option(1.0, "weight of KL(original || current) on the retain set (kl, selective)")
    beta: float = option(0.1, "NPO inverse temperature beta")
    trajectory_samples: int = option(32, "samples per trajectory point for the Frechet distance, sample NLL and "
                                         "class consistency (the final point uses --n-samples)")
    n_samples: int = option(256, "samples of the final point (the yardstick's default, so it compares with "
                                 "unit edits)")
    pca_dim: int = option(16, "PCA dimensions of the Frechet distance")
    seed: int = option(0, "seed of the retain draw and of the samples (seeds seed, seed + 1, ...)")

    def __post_init__(self):
        check_choice("method", self.method, METHODS)
        check_int("steps", self.steps, 1)
        check_float("lr", self.lr, 0.0, lo_open=True)
        check_int("eval_every", self.eval_every, 1)
        check_int("retain_size", self.retain_size, 0)
        check_int("retain_batch", self.retain_batch, 1)
        for name in ("retain_weight", "kl_weight"):
            check_float(name, vars(self)[name], 0.0)
        check_float("beta", self.beta, 0.0, lo_open=True)
        check_int("trajectory_samples", self.trajectory_samples, 2)
        check_int("n_samples", self.n_samples, 2)
        if self.trajectory_samples > self.n_samples:
            raise FieldError("trajectory_samples", f"must be <= n_samples ({self.n_samples}), got "
                                                   f"{self.trajectory_samples}")
        check_int("pca_dim", self.pca_dim, 1)
        check_int("seed", self.seed, 0)
