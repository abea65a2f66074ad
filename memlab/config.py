"""Typed configs shared by the commands: frozen dataclasses, validated on construction, loadable from
TOML and overridable from the command line. No framework imports here (`memlab --help` stays light)."""

from __future__ import annotations

import argparse
import dataclasses
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from memlab.errors import UsageError, check_choice, check_positive

DATASETS = ("gmm", "templates")


@dataclass(frozen=True)
class DataConfig:
    """Which synthetic dataset, its size and its ground-truth parameters."""

    dataset: str = "gmm"
    dim: int = 30  # gmm only
    components: int = 4
    n_train: int = 100
    n_test: int = 1000
    variance: float = 1.0  # gmm: s2; templates: colour variance s_c^2
    template_source: str = "procedural"  # procedural | digits | path to .npy/.npz
    height: int = 15
    width: int = 15
    seed: int = 0

    def __post_init__(self):
        check_choice("dataset", self.dataset, DATASETS)
        for name in ("dim", "components", "n_train", "n_test", "height", "width"):
            check_positive(f"--{name.replace('_', '-')}", getattr(self, name))
        check_positive("--variance", self.variance)
        if self.components > self.n_train:
            raise UsageError(f"--components must be <= --n-train ({self.n_train}), got {self.components}")
        if self.dataset == "templates" and self.template_source not in ("procedural", "digits"):
            p = Path(self.template_source)
            if p.suffix not in (".npy", ".npz"):
                raise UsageError(f"--template-source must be procedural, digits or a .npy/.npz file, got {self.template_source!r}")
            if not p.is_file():
                raise UsageError(f"--template-source file does not exist: {self.template_source}")


def add_data_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("data")
    g.add_argument("--data", choices=DATASETS, default="gmm", help="synthetic dataset (default gmm)")
    g.add_argument("--dim", type=int, default=30, help="GMM dimension d (default 30)")
    g.add_argument("--components", type=int, default=4, help="mixture components K (default 4)")
    g.add_argument("--n-train", type=int, default=100, help="training-set size N (default 100)")
    g.add_argument("--n-test", type=int, default=1000, help="test-set size (default 1000)")
    g.add_argument("--variance", type=float, default=1.0,
                   help="GMM variance s2, or the templates' colour variance s_c^2 (default 1)")
    g.add_argument("--template-source", default="procedural",
                   help="templates: procedural (default), digits (scikit-learn), or a .npy/.npz file of (n,H,W)")
    g.add_argument("--height", type=int, default=15, help="template height (procedural/digits, default 15)")
    g.add_argument("--width", type=int, default=15, help="template width (procedural/digits, default 15)")
    g.add_argument("--seed", type=int, default=0, help="seed of the data draw and of everything random (default 0)")


def data_config_from_args(args: argparse.Namespace) -> DataConfig:
    return DataConfig(dataset=args.data, dim=args.dim, components=args.components, n_train=args.n_train,
                      n_test=args.n_test, variance=args.variance, template_source=args.template_source,
                      height=args.height, width=args.width, seed=args.seed)


def load_dataset(cfg: DataConfig):
    """Build the synthetic dataset a DataConfig names (numpy arrays; no framework)."""
    import synthetic

    try:
        if cfg.dataset == "gmm":
            return synthetic.make_gmm(cfg.dim, cfg.components, cfg.n_train, cfg.n_test, cfg.variance, cfg.seed)
        return synthetic.make_templates(cfg.components, cfg.n_train, cfg.n_test, cfg.variance, cfg.template_source,
                                        cfg.height, cfg.width, seed=cfg.seed)
    except synthetic.DataError as e:
        raise UsageError(str(e)) from None


def to_dict(cfg) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(cls, values: dict[str, Any], where: str = "config"):
    """Build dataclass `cls` from a mapping, naming unknown keys and their allowed values."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise UsageError(f"unknown key {unknown[0]!r} in {where}; allowed: {', '.join(sorted(names))}")
    try:
        return cls(**values)
    except TypeError as e:
        raise UsageError(f"invalid {where}: {e}") from None


def load_toml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"config file does not exist: {p}")
    try:
        return tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"malformed TOML in {p}: {e}") from None
