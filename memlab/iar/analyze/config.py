"""The config of `memlab iar analyze` (no torch import: the CLI builds it while `memlab --help` stays light)."""

from __future__ import annotations

from dataclasses import dataclass

from memlab.errors import FieldError, check_choice, check_float, check_int
from memlab.options import option

# The analyses' names (memlab.iar.analyze.registry.REGISTRY holds them; kept here: no torch import).
ANALYSES = ("entropy", "inference", "perturb", "frequency", "composition")
DEFAULT_ANALYSES = ANALYSES[:4]  # composition needs a run on --data factors, so it is asked for by name
PERTURB_MODES = ("random", "nearest")
PROBE_POOLS = ("quadrants", "mean")  # memlab.iar.analyze.probes.POOLS


@dataclass(frozen=True)
class AnalyzeConfig:
    """Which analyses, and the memorization score they share: the greedy continuation of every image from its
    first `prefix` units (tokens, or scales for next-scale models) against its true tokens after the prefix."""

    what: tuple[str, ...] = option(DEFAULT_ANALYSES, f"comma list of analyses: {', '.join(ANALYSES)} (composition: "
                                                     "runs on --data factors only)")
    prefix: int | None = option(None, "prefix given: tokens (raster, masked) or scales (next-scale)",
                                shown="L/4 tokens or half the scales")  # None -> model.default_prefix()
    memorized_at: float = option(0.9, "an image is memorized when its edit-distance score is at least this, in (0, 1]")
    n_bins: int = option(10, "memorization-score bins of the group entropy (equal width over [0, 1])")
    min_bin: int = option(2, "images a bin needs to enter the group-entropy fit")
    group_size: int = option(3, "also fit the group law with k images pooled per bin (mean of 20 seeded draws), "
                                "so bin size does not drive the entropy (0: only the paper's all-pooled law)")
    min_k: float = option(20.0, "k of the min-k% token-probability baseline", unit="percent")
    ms: tuple[int, ...] = option((), "numbers of prefix tokens perturbed, each at most the prefix's tokens",
                                 shown="1,2,4,... and all of them")
    modes: tuple[str, ...] = option(PERTURB_MODES, "perturbations: random (another code at random) and nearest "
                                                   "(the nearest other codebook entry)")
    n_draws: int = option(1, "random perturbations per (image, m, mode)")
    reference: str = option("", "frequency: a run of the same images in which they have other copy counts (e.g. "
                                "--graded-start moved); its images seen once split this run's by 'memorized at one "
                                "copy'", metavar="RUN", shown="none")
    samples_per_class: int = option(16, "composition: class-conditional samples per shape x colour combination and "
                                        "per arbitrary class, at every checkpoint")
    probe_folds: int = option(5, "composition: cross-validation folds of every linear probe")
    probe_pool: str = option("quadrants", "composition: how a block's units are pooled over token positions: the "
                                          "mean over each quadrant of each token map, concatenated (keeps where a "
                                          "unit fires), or the mean over all positions", choices=PROBE_POOLS)
    classifier_steps: int = option(1000, "composition: optimisation steps of each per-factor classifier")
    classifier_images: int = option(8192, "composition: freshly drawn images the per-factor classifiers learn from")
    classifier_reconstructions: bool = option(True, "composition: the classifiers also learn from the run "
                                                    "tokenizer's reconstructions of the fresh images (samples are "
                                                    "decoded tokens; crisp-only classifiers misread blurred shapes)")
    epochs: tuple[int, ...] = option((), "composition: the checkpoints (epochs) both views are measured at",
                                     shown="every saved checkpoint and the final model")
    n_boot: int = option(1000, "bootstrap resamples of every interval")
    level: float = option(0.95, "confidence level of every interval")
    batch_size: int = option(64, "sequences per forward pass")
    seed: int = option(0, "seed of the perturbations and the bootstrap")

    def __post_init__(self):
        if not self.what:
            raise FieldError("what", f"must name at least one analysis: {', '.join(ANALYSES)}")
        for name in self.what:
            check_choice("what entry", name, ANALYSES)
        if self.prefix is not None:
            check_int("prefix", self.prefix, 1)
        check_float("memorized_at", self.memorized_at, 0.0, 1.0, lo_open=True)
        check_int("n_bins", self.n_bins, 2)
        check_int("min_bin", self.min_bin, 1)
        check_int("group_size", self.group_size, 0)
        check_float("min_k", self.min_k, 0.0, 100.0, lo_open=True)
        for m in self.ms:
            check_int("ms (each value)", m, 1)
        if not self.modes:
            raise FieldError("modes", f"must name at least one mode: {', '.join(PERTURB_MODES)}")
        for mode in self.modes:
            check_choice("modes entry", mode, PERTURB_MODES)
        check_int("n_draws", self.n_draws, 1)
        check_int("samples_per_class", self.samples_per_class, 1)
        check_int("probe_folds", self.probe_folds, 2)
        check_choice("probe_pool", self.probe_pool, PROBE_POOLS)
        check_int("classifier_steps", self.classifier_steps, 1)
        check_int("classifier_images", self.classifier_images, 16)
        for e in self.epochs:
            check_int("epochs (each value)", e, 1)
        check_int("n_boot", self.n_boot, 10)
        check_float("level", self.level, 0.0, 1.0, lo_open=True, hi_open=True)
        check_int("batch_size", self.batch_size, 1)
        check_int("seed", self.seed, 0)
