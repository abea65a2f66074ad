"""Typed configs of an IAR run (no torch import: the CLI builds them while `memlab --help` stays light).

A run directory's config.json is {"kind": "iar-train", "data": ImageDataConfig, "train": IARTrainConfig}; the image set is
rebuilt from it (spec + seed), never stored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from memlab.errors import FieldError, UsageError, check_choice, check_float, check_int
from memlab.options import option

ARCHS = ("next-scale", "raster", "masked")
# Model epochs that memorize the default 256 shapes: the random-mask objective needs about 3x more passes.
DEFAULT_EPOCHS = {"next-scale": 60, "raster": 60, "masked": 200}
# Peak learning rates, chosen by measurement (docs/iar_models.md, "Training stages and the defaults"): on the
# default 256 shapes, 60 epochs end at held-out NLL 5.4 (next-scale, 2e-3) and 5.9 (raster, 1e-3) nats per token
# against log 256 = 5.5 for a uniform guess, with training accuracy 0.71 / 0.76; at the former 5e-3 both end at
# 8.4-9.6 nats (wildly over-confident). The masked model learns slowly and keeps 5e-3 (not re-measured).
DEFAULT_LR = {"next-scale": 2e-3, "raster": 1e-3, "masked": 5e-3}
# Whether --scales shapes the token sequence (a pyramid of scales); the other archs use the latent grid only.
USES_SCALES = {"next-scale": True, "raster": False, "masked": False}
DATA_SOURCES = ("shapes", "factors", "digits", "faces", "folder:PATH", "npz:PATH")
MEMORIZED_ACC = 0.99  # teacher-forced top-1 accuracy on the targets that marks them memorized (issue 12)
PRUNE_BY = ("memorization", "difficulty", "random")  # memlab.iar.mitigate.cartography.select_pruned
# Whether --memsinks applies: the models built on memlab.iar.models.layers.Trunk (the masked model's MLPs are diffusers')
HAS_SINKS = {"next-scale": True, "raster": True, "masked": False}
CLASS_EMBEDDINGS = ("auto", "joint", "factorized")
TOKENIZER_NORMS = ("group", "spatial")  # memlab.iar.tokenizer.NORM_TYPES (kept here: no torch import)


@dataclass(frozen=True)
class ImageDataConfig:
    """Which image set (see synthetic.images) and how it is split; pixels in [0, 1]."""

    data: str = option("shapes", f"image set: {', '.join(DATA_SOURCES)}", metavar="SOURCE")
    size: int = option(16, "image height = width", unit="pixels", flag="--image-size")
    n_train: int = option(256, "training images")
    n_heldout: int = option(64, "held-out images")
    duplicates: int = option(1, "copies of each planted duplicate in the training set (1: none)")
    n_duplicated: int = option(0, "how many training images are duplicated --duplicates times")
    graded: tuple[int, ...] = option((), "graded duplication instead of --duplicates: copies of each group, e.g. "
                                         "1,2,4,8,16 (groups of --graded-size images; empty: none)", shown="none")
    graded_size: int = option(8, "images in each graded-duplication group")
    graded_start: int = option(0, "training image where the graded groups begin (another start puts other "
                                  "images at each copy count)")
    heldout_combos: tuple[str, ...] = option((), "--data factors: shape x colour combinations that no training "
                                                 "image shows, e.g. circle:red,square:blue", shown="none",
                                             metavar="SHAPE:COLOUR,...")
    heldout_share: float = option(0.0, "--data factors: share of the 20 shape x colour combinations held out "
                                       "(a seeded draw that keeps every shape and colour trained)")
    arbitrary_labels: float = option(0.0, "--data factors: share of the training images whose label is one of "
                                          "--arbitrary-classes classes that no factor determines")
    arbitrary_classes: int = option(8, "--data factors: how many arbitrary classes")
    seed: int = option(0, "seed of the data draw, initialisation and batches")

    def __post_init__(self):
        kind, _, arg = self.data.partition(":")
        if self.data not in ("shapes", "factors", "digits", "faces") and not (kind in ("folder", "npz") and arg):
            raise UsageError(f"unknown --data {self.data!r}; allowed: {', '.join(DATA_SOURCES)}")
        if kind == "folder" and not Path(arg).is_dir():
            raise UsageError(f"--data folder does not exist: {arg}")
        if kind == "npz" and not Path(arg).is_file():
            raise UsageError(f"--data npz file does not exist: {arg}")
        if kind in ("folder", "npz"):  # saved absolute: the run resumes from any working directory
            object.__setattr__(self, "data", f"{kind}:{Path(arg).resolve()}")
        if self.size % 4 or self.size < 8:
            raise UsageError(f"--image-size must be a multiple of 4 and >= 8 (the tokenizer downsamples by 4), got {self.size}")
        for name in ("n_train", "n_heldout", "duplicates"):
            check_int(name, vars(self)[name], 1)
        check_int("n_duplicated", self.n_duplicated, 0, self.n_train)
        for c in self.graded:
            check_int("graded (each value)", c, 1)
        check_int("graded_size", self.graded_size, 1)
        check_int("graded_start", self.graded_start, 0)
        if self.graded and self.duplicates > 1 and self.n_duplicated > 0:
            raise UsageError("--graded replaces --duplicates / --n-duplicated: give one or the other")
        if self.graded_start + len(self.graded) * self.graded_size > self.n_train:
            raise UsageError(f"--graded needs --graded-start + {len(self.graded)} groups x --graded-size <= "
                             f"--n-train {self.n_train}, got {self.graded_start} + {len(self.graded)} x "
                             f"{self.graded_size}")
        check_int("seed", self.seed, 0)
        self._check_factors()

    def _check_factors(self):
        check_float("heldout_share", self.heldout_share, 0.0, 1.0, hi_open=True)
        check_float("arbitrary_labels", self.arbitrary_labels, 0.0, 1.0, hi_open=True)
        check_int("arbitrary_classes", self.arbitrary_classes, 1)
        if not (self.heldout_combos or self.heldout_share or self.arbitrary_labels):
            return
        if self.data != "factors":
            raise UsageError(f"--heldout-combos, --heldout-share and --arbitrary-labels need --data factors, got "
                             f"--data {self.data}")
        import synthetic
        from synthetic.factors import resolve_heldout

        try:
            resolve_heldout(self.heldout_combos, self.heldout_share, self.seed)
        except synthetic.DataError as e:
            raise UsageError(str(e)) from None


@dataclass(frozen=True)
class IARTrainConfig:
    """Tokenizer + IAR model sizes and the optimisation of both stages (AdamW, warmup + cosine)."""

    arch: str = option("next-scale", "IAR architecture", choices=ARCHS)
    epochs: int | None = option(None, "model epochs", shown=", ".join(f"{a} {e}" for a, e in DEFAULT_EPOCHS.items()))
    tokenizer_epochs: int = option(30, "tokenizer epochs")
    batch_size: int = option(32, "images per optimisation step")
    lr: float | None = option(None, "model peak learning rate (AdamW, warmup + cosine)",
                              shown=", ".join(f"{a} {v:g}" for a, v in DEFAULT_LR.items()))
    tokenizer_lr: float = option(2e-3, "tokenizer peak learning rate")
    weight_decay: float = option(0.01, "AdamW weight decay of both stages")
    warmup_frac: float = option(0.05, "fraction of the steps with a linear warmup")
    width: int = option(64, "transformer width")
    depth: int = option(3, "transformer blocks")
    heads: int = option(4, "attention heads")
    mlp_ratio: int = option(4, "MLP hidden units per width unit")
    codebook_size: int = option(256, "tokenizer codebook entries")
    latent_channels: int = option(16, "tokenizer latent / code dimension")
    tokenizer_channels: tuple[int, ...] = option((16, 32, 32), "the tokenizer's 3 encoder/decoder widths, "
                                                              "multiples of 8")  # 2 downsamplings, factor 4
    tokenizer_norm: str = option("group", "the tokenizer decoder's norms: group (GroupNorm) or spatial (MoVQ: "
                                          "modulated by the latents; keeps colour; widths multiples of 32)",
                                 choices=TOKENIZER_NORMS)
    scales: tuple[int, ...] = option((1, 2, 3, 4), "next-scale token-map sides, ending at image size / 4")
    class_embedding: str = option("auto", "how a class label is embedded: joint (one vector per class) or "
                                          "factorized (the sum of a shape and a colour vector, so that a held-out "
                                          "combination has an embedding; --data factors only; arbitrary classes "
                                          "keep one vector each); auto: factorized for --data factors",
                                  choices=CLASS_EMBEDDINGS)
    seed: int = option(0, "seed of initialisation and batches (the data seed on the command line)")
    stop_when_memorized: float | None = option(
        None, "stop at the first epoch whose teacher-forced top-1 accuracy on the targets (the tokens the "
              "extraction attack must produce) reaches ACC (the flag "
              f"alone: {MEMORIZED_ACC}); without it the run trains all epochs and still saves the epoch that first "
              f"reaches {MEMORIZED_ACC} as the 'memorized' stage", const=MEMORIZED_ACC, metavar="ACC", shown="off")
    targets: tuple[str, ...] = option((), "image ids whose accuracy defines 'memorized' (default: the planted "
                                          "duplicates, else every training image)", shown="planted duplicates")
    tokenizer_from: str | None = option(None, "reuse RUN's trained tokenizer instead of training one (same image size, "
                                              "scales and codebook): retrained models then share the base run's "
                                              "tokens, so the yardstick scores them on the same numbers",
                                        metavar="RUN", shown="--prune-from's, else train one")
    # --- mitigations that change what the model trains on (issue 14; memlab.iar.mitigate, docs/iar_mitigations.md)
    cartography: bool = option(False, "record, per training image and epoch, the teacher-forced loss and top-1 "
                                      "accuracy (RUN/cartography.parquet) and draw the quadrant figure")
    prune_from: str | None = option(None, "retrain without the images that RUN's cartography table names (RUN "
                                          "trained with --cartography on the same image set)", metavar="RUN",
                                    shown="off")
    prune: float = option(10.0, "share of the training images (image ids; a planted duplicate's copies go "
                                "together) that --prune-from removes", unit="percent")
    prune_by: str = option("memorization", "which images --prune-from removes: most forget events, highest "
                                           "early loss, or a seeded random draw", choices=PRUNE_BY, flag="--by")
    prune_weight: float = option(0.0, "loss weight of the pruned images, in [0, 1) (0 removes them)")
    forget_threshold: float = option(0.9, "top-1 accuracy at which an image counts as learned (a forget event: "
                                          "learned at one epoch, not at the next)")
    difficulty_epochs: int = option(5, "first epochs whose mean loss is an image's difficulty")
    reweight_below: float | None = option(None, "memorization-aware reweighting: an image whose loss at the last "
                                                "epoch fell below LOSS trains with weight --reweight-factor",
                                          unit="nats per token", metavar="LOSS", shown="off")
    reweight_factor: float = option(0.1, "loss weight of the images under --reweight-below, in [0, 1)")
    dedup: bool = option(False, "train without near-duplicates: of each group of training images closer than "
                                "--dedup-threshold only the first is kept")
    dedup_threshold: float = option(0.02, "RMS pixel distance (pixels in [0, 1]) under which two training "
                                          "images are near-duplicates")
    memsinks: float = option(0.0, "MemSinks: share of every MLP's hidden units that are memorization sinks, in "
                                  "[0, 1) (the MLP keeps --mlp-ratio x --width units in all; 0: standard training)",
                             metavar="FRACTION")
    sink_active: float = option(0.5, "MemSinks: share of the sinks each training image switches on (chosen by a "
                                     "hash of its id; copies share it), in (0, 1]")

    @property
    def memorized_acc(self) -> float:
        """The target accuracy that marks the 'memorized' stage."""
        return MEMORIZED_ACC if self.stop_when_memorized is None else self.stop_when_memorized

    def __post_init__(self):
        check_choice("arch", self.arch, ARCHS)
        if self.stop_when_memorized is not None:
            check_float("stop_when_memorized", self.stop_when_memorized, 0.0, 1.0, lo_open=True)
        if self.epochs is None:
            object.__setattr__(self, "epochs", DEFAULT_EPOCHS[self.arch])
        if self.lr is None:
            object.__setattr__(self, "lr", DEFAULT_LR[self.arch])
        for name in ("epochs", "batch_size", "width", "depth", "heads", "mlp_ratio", "codebook_size",
                     "latent_channels"):
            check_int(name, vars(self)[name], 1)
        check_int("tokenizer_epochs", self.tokenizer_epochs, 0)
        check_int("seed", self.seed, 0)
        check_float("lr", self.lr, 0.0, lo_open=True)
        check_float("tokenizer_lr", self.tokenizer_lr, 0.0, lo_open=True)
        check_float("weight_decay", self.weight_decay, 0.0, 1.0)
        check_float("warmup_frac", self.warmup_frac, 0.0, 1.0, hi_open=True)
        check_choice("tokenizer_norm", self.tokenizer_norm, TOKENIZER_NORMS)
        check_choice("class_embedding", self.class_embedding, CLASS_EMBEDDINGS)
        if self.tokenizer_norm == "spatial" and any(c % 32 for c in self.tokenizer_channels):
            raise FieldError("tokenizer_channels", "must be multiples of 32 with tokenizer_norm spatial, "
                                                   f"got {','.join(map(str, self.tokenizer_channels))}")
        if self.tokenizer_from is not None:  # saved absolute; its contents are checked when training starts
            object.__setattr__(self, "tokenizer_from", str(Path(self.tokenizer_from).resolve()))
        if self.prune_from is not None:  # saved absolute; its contents are checked when training starts
            object.__setattr__(self, "prune_from", str(Path(self.prune_from).resolve()))
        check_float("prune", self.prune, 0.0, 100.0, lo_open=True, hi_open=True)
        check_choice("prune_by", self.prune_by, PRUNE_BY)
        check_float("prune_weight", self.prune_weight, 0.0, 1.0, hi_open=True)
        check_float("forget_threshold", self.forget_threshold, 0.0, 1.0, lo_open=True)
        check_int("difficulty_epochs", self.difficulty_epochs, 1)
        if self.reweight_below is not None:
            check_float("reweight_below", self.reweight_below, 0.0, lo_open=True)
        check_float("reweight_factor", self.reweight_factor, 0.0, 1.0, hi_open=True)
        check_float("dedup_threshold", self.dedup_threshold, 0.0, lo_open=True)
        check_float("memsinks", self.memsinks, 0.0, 1.0, hi_open=True)
        check_float("sink_active", self.sink_active, 0.0, 1.0, lo_open=True)
        if self.memsinks and not HAS_SINKS[self.arch]:
            raise FieldError("memsinks", f"needs --arch {' or '.join(a for a in ARCHS if HAS_SINKS[a])} (the masked "
                                         f"model's MLPs are diffusers' own), got {self.arch}")
        hidden = self.mlp_ratio * self.width
        if self.memsinks and not 1 <= round(self.memsinks * hidden) < hidden:
            raise FieldError("memsinks", f"leaves no sink or no shared unit of the {hidden} MLP units per block, "
                                         f"got {self.memsinks:g}")
        if self.width % self.heads:
            raise UsageError(f"--width must be a multiple of --heads ({self.heads}), got {self.width}")
        if len(self.tokenizer_channels) != 3 or any(c <= 0 or c % 8 for c in self.tokenizer_channels):
            raise UsageError(f"tokenizer_channels must be 3 positive multiples of 8, got {self.tokenizer_channels}")
        if not self.scales or list(self.scales) != sorted(set(self.scales)) or self.scales[0] < 1:
            raise UsageError(f"--scales must be strictly increasing positive integers, got {self.scales}")

    def check_against(self, data: ImageDataConfig) -> None:
        if self.class_embedding == "factorized" and data.data != "factors":
            raise UsageError(f"--class-embedding factorized needs --data factors, got --data {data.data}")
        grid = data.size // 4
        if USES_SCALES[self.arch] and self.scales[-1] != grid:
            raise UsageError(f"--scales must end at the latent grid size {grid} (image size {data.size} / 4), "
                             f"got {','.join(map(str, self.scales))}")


@dataclass(frozen=True)
class RunConfig:
    data: ImageDataConfig = field(default_factory=ImageDataConfig)
    train: IARTrainConfig = field(default_factory=IARTrainConfig)

    def __post_init__(self):
        self.train.check_against(self.data)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def class_factors(self) -> tuple[int, ...] | None:
        """Sizes of the factors a class label is the combination of (shape, colour) when its embedding is
        factorized, else None (memlab.iar.models.layers.class_embedding)."""
        e = self.train.class_embedding
        if e == "joint" or (e == "auto" and self.data.data != "factors"):
            return None
        from synthetic.factors import COLOURS, SHAPES

        return (len(SHAPES), len(COLOURS))

    @classmethod
    def from_dict(cls, d: dict, where: str = "config.json") -> "RunConfig":
        from memlab.options import from_dict

        d = {k: v for k, v in d.items() if k != "kind"} if isinstance(d, dict) else d
        if not isinstance(d, dict) or set(d) - {"data", "train"} or "train" not in d or "data" not in d:
            raise UsageError(f"{where} must hold exactly the keys 'data' and 'train'")
        return cls(from_dict(ImageDataConfig, d["data"], f"{where} [data]"),
                   from_dict(IARTrainConfig, d["train"], f"{where} [train]"))


# --- the analyses of a trained run (localize, extract, ablate) -----------------------------------------

RESTS = ("mean", "median")
CONTROLS = ("random", "bottom")
RANKS = ("global", "per-block")


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentations of UnitMem; pixels in [0, 1]."""

    n_aug: int = option(10, "augmentations per image, A (including the identity)")
    max_shift: int = option(1, "largest shift, each direction", unit="pixels")
    flip: bool = option(True, "random horizontal flips")
    jitter: float = option(0.05, "brightness / contrast / per-channel shift amplitude", unit="pixels in [0, 1]")
    seed: int = option(0, "augmentation seed")

    def __post_init__(self):
        check_int("n_aug", self.n_aug, 1)
        check_int("max_shift", self.max_shift, 0, 8)
        check_float("jitter", self.jitter, 0.0, 0.5)
        check_int("seed", self.seed, 0)


@dataclass(frozen=True)
class UnitMemConfig:
    augment: AugmentConfig = option(default_factory=AugmentConfig, cli=False)
    batch_size: int = option(64, "images per forward pass")
    rest: str = option("mean", "summary of mu over the other images", choices=RESTS)
    top_pct: float = option(10.0, "k of the top-k% share per block", unit="percent")

    def __post_init__(self):
        check_int("batch_size", self.batch_size, 1)
        check_choice("rest", self.rest, RESTS)
        check_float("top_pct", self.top_pct, 0.0, 100.0, lo_open=True)


@dataclass(frozen=True)
class ExtractConfig:
    n_candidates: int = option(32, "training images attacked", flag="--candidates")
    prefix: int | None = option(None, "tokens (raster, masked) or scales (next-scale) given",
                                shown="L/4 tokens or half the scales")  # None -> model.default_prefix()
    fpr: float = option(0.05, "held-out false-positive rate of the threshold")
    n_calib: int = option(256, "held-out images used for the threshold")
    nn_ratio: float = option(1.0 / 3.0, "also require d(own) < ratio x d(nearest other training image); "
                                        "1 = merely closest, inf = off", shown="1/3")
    batch_size: int = option(64, "images per forward pass")

    def __post_init__(self):
        check_int("n_candidates", self.n_candidates, 1)
        check_float("nn_ratio", self.nn_ratio, 0.0, lo_open=True, inf_ok=True)
        if self.prefix is not None:
            check_int("prefix", self.prefix, 1)
        check_float("fpr", self.fpr, 0.0, 1.0, lo_open=True, hi_open=True)
        check_int("n_calib", self.n_calib, 1)
        check_int("batch_size", self.batch_size, 1)


@dataclass(frozen=True)
class QualityConfig:
    n_generate: int = option(64, "samples for the Frechet distance")
    pca_dim: int = option(16, "PCA dimensions of the Frechet distance")
    seed: int = option(0, "generation seeds are seed, seed + 1, ...")
    batch_size: int = option(64, "images per forward pass")

    def __post_init__(self):
        check_int("n_generate", self.n_generate, 1)
        check_int("pca_dim", self.pca_dim, 1)
        check_int("seed", self.seed, 0)
        check_int("batch_size", self.batch_size, 1)


@dataclass(frozen=True)
class AblateConfig:
    top_pct: float = option(10.0, "k, percent of units edited, in (0, 100]", flag="--top", unit="percent")
    factor: float = option(0.5, "incoming weights multiplied by this, in [0, 1] (0 removes the unit)")
    controls: tuple[str, ...] = option(CONTROLS, f"comma list of controls: {', '.join(CONTROLS)}")
    n_random: int = option(3, "draws of the random control")
    sweep: tuple[float, ...] = option((1.0, 5.0, 10.0, 20.0), "extra k values for the curves", unit="percent")
    rank: str = option("global", "rank units over the model or within every block", choices=RANKS)
    by_block: bool = option(True, "also edit the top k% of one block at a time")
    seed: int = option(0, "seed of random controls and samples")

    def __post_init__(self):
        check_float("top_pct", self.top_pct, 0, 100, lo_open=True)
        for pct in self.sweep:
            check_float("sweep (each value)", pct, 0, 100, lo_open=True)
        check_float("factor", self.factor, 0, 1)
        for c in self.controls:
            check_choice("controls entry", c, CONTROLS)
        check_int("n_random", self.n_random, 1)
        check_choice("rank", self.rank, RANKS)
        check_int("seed", self.seed, 0)

    @property
    def pcts(self) -> list[float]:
        return sorted({float(self.top_pct), *map(float, self.sweep)})


# The localizer registry's names (memlab.iar.localizers.REGISTRY holds the methods; kept here: no torch import).
LOCALIZERS = ("unitmem", "activation", "contrast", "grad-act", "integrated-gradients", "zero-out", "hard-concrete",
              "slimming", "oracle", "random")
RETAIN_SETS = ("train", "heldout")
# The yardstick's own reference is a cloud of random edits: a "random" localizer would be one draw of it.
YARDSTICK_LOCALIZERS = tuple(n for n in LOCALIZERS if n != "random")


@dataclass(frozen=True)
class LocalizerConfig:
    """Settings of the localizers (memlab.iar.localizers); each method reads the fields it needs."""

    per_image: bool = option(False, "one target at a time: the score on that image (score) beside its mean over "
                                    "the other targets (neg)")
    batch_size: int = option(64, "sequences per forward pass")
    ig_steps: int = option(16, "integrated-gradients steps (midpoint rule from 0 to the activation)")
    steps: int = option(200, "optimisation steps of the learned masks (hard-concrete, slimming)",
                        flag="--mask-steps")
    lr: float = option(0.1, "Adam learning rate of the learned masks", flag="--mask-lr")
    sparsity: float = option(1.0, "weight of the learned masks' sparsity penalty (on the mean share of units "
                                  "dropped: expected L0 for hard-concrete, L1 for slimming)")
    retain: str = option("train", "retain set whose NLL the learned masks keep: train (the training images outside "
                                  "the targets) or heldout (the held-out images)", choices=RETAIN_SETS)
    retain_weight: float = option(1.0, "weight of the retain set's NLL in the learned masks' objective")
    oracle_reference: int = option(32, "other training images the oracle compares the targets with (a seeded "
                                       "draw; 0: all of them)")
    seed: int = option(0, "seed of random scores, mask initialisation, concrete noise and batch draws")
    unitmem: UnitMemConfig = option(default_factory=UnitMemConfig, cli=False)

    def __post_init__(self):
        for name in ("batch_size", "ig_steps", "steps"):
            check_int(name, vars(self)[name], 1)
        check_float("lr", self.lr, 0.0, lo_open=True)
        check_float("sparsity", self.sparsity, 0.0)
        check_choice("retain", self.retain, RETAIN_SETS)
        check_float("retain_weight", self.retain_weight, 0.0)
        check_int("oracle_reference", self.oracle_reference, 0)
        check_int("seed", self.seed, 0)


@dataclass(frozen=True)
class YardstickConfig:
    """`memlab iar ablate --localizer`: the localizer's top-k edits beside a random-edit cloud, all scored
    by the yardstick, with verdicts at matched cost."""

    localizer: str = option("unitmem", "who chooses the units to edit", choices=YARDSTICK_LOCALIZERS)
    ks: tuple[float, ...] = option((1.0, 5.0, 10.0, 20.0), "k values of the localizer's top-k% edits", unit="percent")
    factors: tuple[float, ...] = option((0.5, 0.0), "weight factors of every edit, in [0, 1] (0 removes)")
    cloud_ks: tuple[float, ...] = option((0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0), "k values of the random cloud",
                                         unit="percent")
    n_draws: int = option(5, "random draws per (k, factor) of the cloud (at least 5)")
    n_samples: int = option(256, "samples per condition for the Frechet distance, sample NLL and class consistency")
    targets: tuple[str, ...] = option((), "target image ids (default: the planted duplicates, else a seeded half "
                                          "of what the unedited model extracts)", shown="planted duplicates")
    pca_dim: int = option(16, "PCA dimensions of the Frechet distance")
    n_boot: int = option(1000, "bootstrap resamples of the matched-cost curves")
    seed: int = option(0, "seed of the random cloud, the samples and the target split")
    edits_per_pass: int = option(8, "unit edits evaluated together, stacked on the batch axis (1: one at a time; the "
                                    "numbers are the same, only speed and memory change)")
    rows_per_pass: int = option(256, "batch rows of one forward pass when edits are stacked")

    # fields that change speed and memory only: finished rows of another value are reused
    SPEED_ONLY = ("edits_per_pass", "rows_per_pass")

    def __post_init__(self):
        check_choice("localizer", self.localizer, YARDSTICK_LOCALIZERS)
        check_int("edits_per_pass", self.edits_per_pass, 1)
        check_int("rows_per_pass", self.rows_per_pass, 1)
        for name in ("ks", "cloud_ks"):
            if not vars(self)[name]:
                raise FieldError(name, "must list at least one k")
            for k in vars(self)[name]:
                check_float(f"{name} (each value)", k, 0, 100, lo_open=True)
        if not self.factors:
            raise FieldError("factors", "must list at least one factor")
        for f in self.factors:
            check_float("factors (each value)", f, 0, 1)
        check_int("n_draws", self.n_draws, 5)
        check_int("n_samples", self.n_samples, 2)
        check_int("pca_dim", self.pca_dim, 1)
        check_int("n_boot", self.n_boot, 10)
        check_int("seed", self.seed, 0)


@dataclass(frozen=True)
class InjectConfig:
    """INJ (memlab.iar.inject): a trained run fine-tuned on new images (drawn from its held-out split), only the
    outgoing weights of a random share of its MLP units free; then each localizer ranks units for those images
    and is scored by recall@k against the injected units."""

    n_images: int = option(16, "new images injected (drawn from the run's held-out split, which keeps the rest)")
    # Measured on the default-size runs (768 units, 16 images): 0.1 and 0.2 reproduce every image within 115
    # epochs at lr 3e-2 (raster and next-scale); 0.05 reproduces 0-7 of 16 after 500-1000 epochs.
    fractions: tuple[float, ...] = option((0.1, 0.2), "shares of all MLP units whose outgoing weights may change, "
                                                      "each in (0, 1]")
    seeds: tuple[int, ...] = option((0, 1, 2), "injection seeds (images, units, batch order)")
    max_epochs: int = option(300, "bound on fine-tuning epochs (it stops at the first epoch that reproduces every "
                                  "injected image from its prefix)")
    lr: float = option(3e-2, "Adam learning rate of the fine-tune (no weight decay)")
    batch_size: int = option(16, "injected images per optimisation step")
    level: float = option(0.95, "confidence level of the t-interval of recall@k over seeds")
    localizer: LocalizerConfig = option(default_factory=LocalizerConfig, cli=False)

    def __post_init__(self):
        check_int("n_images", self.n_images, 1)
        if not self.fractions or not self.seeds:
            raise FieldError("fractions" if not self.fractions else "seeds", "must list at least one value")
        for f in self.fractions:
            check_float("fractions (each value)", f, 0.0, 1.0, lo_open=True)
        for s in self.seeds:
            check_int("seeds (each value)", s, 0)
        if len(set(self.seeds)) != len(self.seeds) or len(set(self.fractions)) != len(self.fractions):
            raise FieldError("seeds" if len(set(self.seeds)) != len(self.seeds) else "fractions",
                             "must not repeat a value")
        check_int("max_epochs", self.max_epochs, 1)
        check_float("lr", self.lr, 0.0, lo_open=True)
        check_int("batch_size", self.batch_size, 1)
        check_float("level", self.level, 0.0, 1.0, lo_open=True, hi_open=True)
        if self.localizer.per_image:
            raise FieldError("localizer.per_image", "must be false: INJ ranks units for the injected images together")
