"""Typed configs shared by the commands: frozen dataclasses, validated on construction, loadable from
TOML and overridable from the command line. No framework imports here (`memlab --help` stays light)."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memlab.errors import FieldError, UsageError, check_choice, check_float, check_int
from memlab.options import Section, option
from memlab.options import from_dict as options_from_dict

DATASETS = ("gmm", "lowrank-gmm", "templates")


@dataclass(frozen=True)
class DataConfig:
    """Which synthetic dataset, its size and its ground-truth parameters."""

    dataset: str = option("gmm", "synthetic dataset", flag="--data", choices=DATASETS)
    dim: int = option(30, "dimension d (gmm, lowrank-gmm)")
    components: int = option(4, "mixture components K")
    n_train: int = option(100, "training-set size N")
    n_test: int = option(1000, "test-set size")
    variance: float = option(1.0, "GMM variance s2 (lowrank-gmm: along each subspace), or the templates' colour "
                                  "variance s_c^2")
    rank: int = option(3, "subspace rank r of each component (lowrank-gmm only)")
    noise: float = option(0.0, "isotropic noise variance tau^2 added to every sample (lowrank-gmm only)")
    template_source: str = option("procedural", "templates: procedural, digits (scikit-learn), or a .npy/.npz "
                                                "file of (n,H,W) arrays")
    height: int = option(15, "template height (procedural/digits)", unit="pixels")
    width: int = option(15, "template width (procedural/digits)", unit="pixels")
    seed: int = option(0, "seed of the data draw and of everything random")

    def __post_init__(self):
        check_choice("dataset", self.dataset, DATASETS)
        for name in ("dim", "components", "n_train", "n_test", "height", "width", "rank"):
            check_int(name, getattr(self, name), 1)
        check_int("seed", self.seed, 0)
        check_float("variance", self.variance, 0.0, lo_open=True)
        check_float("noise", self.noise, 0.0)
        if self.dataset == "lowrank-gmm" and self.rank > self.dim:
            raise FieldError("rank", f"must be <= dim ({self.dim}), got {self.rank}")
        if self.components > self.n_train:
            raise FieldError("components", f"must be <= n_train ({self.n_train}), got {self.components}")
        if self.dataset == "templates" and self.template_source not in ("procedural", "digits"):
            p = Path(self.template_source)
            if p.suffix not in (".npy", ".npz"):
                raise FieldError("template_source", f"must be procedural, digits or a .npy/.npz file, got {self.template_source!r}")
            if not p.is_file():
                raise FieldError("template_source", f"file does not exist: {self.template_source}")
            # saved absolute, so a run resumes (and a sweep cell hashes) the same from any working directory
            object.__setattr__(self, "template_source", str(p.resolve()))


DATA_SECTION = Section("data", DataConfig, title="data")


def load_dataset(cfg: DataConfig):
    """Build the synthetic dataset a DataConfig names (numpy arrays; no framework)."""
    import synthetic

    try:
        if cfg.dataset == "gmm":
            return synthetic.make_gmm(cfg.dim, cfg.components, cfg.n_train, cfg.n_test, cfg.variance, cfg.seed)
        if cfg.dataset == "lowrank-gmm":
            return synthetic.make_lowrank_gmm(cfg.dim, cfg.components, cfg.rank, cfg.n_train, cfg.n_test,
                                              cfg.variance, cfg.noise, cfg.seed)
        return synthetic.make_templates(cfg.components, cfg.n_train, cfg.n_test, cfg.variance, cfg.template_source,
                                        cfg.height, cfg.width, seed=cfg.seed)
    except synthetic.DataError as e:
        raise UsageError(str(e)) from None


def to_dict(cfg) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


from_dict = options_from_dict  # re-exported: configs are built from mappings in one place


def load_toml(path: str | Path) -> dict[str, Any]:
    """The tables of a TOML config file; a missing, unreadable, non-UTF-8 or malformed file is a UsageError."""
    from memlab.io import read_text

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"config file does not exist or is not a file: {p}")
    text = read_text(p, "config file")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"malformed TOML in {p}: {e}") from None
