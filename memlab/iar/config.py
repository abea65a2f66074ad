"""Typed configs of an IAR run (no torch import: the CLI builds them while `memlab --help` stays light).

A run directory's config.json is {"data": ImageDataConfig, "train": IARTrainConfig}; the image set is
rebuilt from it (spec + seed), never stored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from memlab.errors import UsageError, check_choice, check_positive, check_range

ARCHS = ("next-scale", "raster", "masked")
# Model epochs that memorize the default 256 shapes: the random-mask objective needs about 3x more passes.
DEFAULT_EPOCHS = {"next-scale": 60, "raster": 60, "masked": 200}
DATA_SOURCES = ("shapes", "digits", "faces", "folder:PATH", "npz:PATH")


@dataclass(frozen=True)
class ImageDataConfig:
    """Which image set (see synthetic.images) and how it is split; pixels in [0, 1]."""

    data: str = "shapes"
    size: int = 16
    n_train: int = 256
    n_heldout: int = 64
    duplicates: int = 1  # planted memorization: the first n_duplicated images appear this many times
    n_duplicated: int = 0
    seed: int = 0

    def __post_init__(self):
        kind, _, arg = self.data.partition(":")
        if self.data not in ("shapes", "digits", "faces") and not (kind in ("folder", "npz") and arg):
            raise UsageError(f"unknown --data {self.data!r}; allowed: {', '.join(DATA_SOURCES)}")
        if kind == "folder" and not Path(arg).is_dir():
            raise UsageError(f"--data folder does not exist: {arg}")
        if kind == "npz" and not Path(arg).is_file():
            raise UsageError(f"--data npz file does not exist: {arg}")
        if self.size % 4 or self.size < 8:
            raise UsageError(f"--image-size must be a multiple of 4 and >= 8 (the tokenizer downsamples by 4), got {self.size}")
        for name in ("n_train", "n_heldout", "duplicates"):
            check_positive(f"--{name.replace('_', '-')}", getattr(self, name))
        check_range("--n-duplicated", self.n_duplicated, 0, self.n_train)


@dataclass(frozen=True)
class IARTrainConfig:
    """Tokenizer + IAR model sizes and the optimisation of both stages (AdamW, warmup + cosine)."""

    arch: str = "next-scale"
    epochs: int | None = None  # None: DEFAULT_EPOCHS[arch]
    tokenizer_epochs: int = 30
    batch_size: int = 32
    lr: float = 5e-3
    tokenizer_lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_frac: float = 0.05
    width: int = 64
    depth: int = 3
    heads: int = 4
    mlp_ratio: int = 4
    codebook_size: int = 256
    latent_channels: int = 16
    tokenizer_channels: tuple[int, ...] = (16, 32, 32)  # 3 encoder blocks: 2 downsamplings, factor 4
    scales: tuple[int, ...] = (1, 2, 3, 4)  # multi-scale token maps; the last must equal size / 4
    seed: int = 0

    def __post_init__(self):
        check_choice("--arch", self.arch, ARCHS)
        if self.epochs is None:
            object.__setattr__(self, "epochs", DEFAULT_EPOCHS[self.arch])
        for name in ("epochs", "batch_size", "width", "depth", "heads", "mlp_ratio", "codebook_size",
                     "latent_channels"):
            check_positive(f"--{name.replace('_', '-')}", getattr(self, name))
        check_positive("--tokenizer-epochs", self.tokenizer_epochs, allow_zero=True)
        check_positive("--lr", self.lr)
        check_positive("--tokenizer-lr", self.tokenizer_lr)
        check_range("--weight-decay", self.weight_decay, 0.0, 1.0)
        check_range("--warmup-frac", self.warmup_frac, 0.0, 1.0, hi_open=True)
        if self.width % self.heads:
            raise UsageError(f"--width must be a multiple of --heads ({self.heads}), got {self.width}")
        if len(self.tokenizer_channels) != 3 or any(c <= 0 or c % 8 for c in self.tokenizer_channels):
            raise UsageError(f"tokenizer_channels must be 3 positive multiples of 8, got {self.tokenizer_channels}")
        if not self.scales or list(self.scales) != sorted(set(self.scales)) or self.scales[0] < 1:
            raise UsageError(f"--scales must be strictly increasing positive integers, got {self.scales}")

    def check_against(self, data: ImageDataConfig) -> None:
        grid = data.size // 4
        if self.arch == "next-scale" and self.scales[-1] != grid:  # the other archs use the grid only
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

    @classmethod
    def from_dict(cls, d: dict, where: str = "config.json") -> "RunConfig":
        from memlab.config import from_dict

        if not isinstance(d, dict) or set(d) - {"data", "train"} or "train" not in d or "data" not in d:
            raise UsageError(f"{where} must hold exactly the keys 'data' and 'train'")
        train = dict(d["train"])
        for k in ("tokenizer_channels", "scales"):
            if k in train:
                train[k] = tuple(train[k])
        return cls(from_dict(ImageDataConfig, d["data"], f"{where} [data]"),
                   from_dict(IARTrainConfig, train, f"{where} [train]"))
