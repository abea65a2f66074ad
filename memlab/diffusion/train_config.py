"""TrainConfig: what `memlab train` and sweeps train, in three frozen parts: the model (`ModelConfig`, in
model_config.py), the optimizer and objective (`OptimConfig`) and the evaluation (`EvalConfig`). No framework
imports, so the CLI can build and validate it before JAX is loaded (re-exported by memlab.diffusion.run).

Layouts. A run's config.json holds one object per part ({"data", "model", "optim", "eval"}), as the TOML
tables of `memlab train --config` do. The flat layout of one table of every field (`model` naming the
family) is what TrainConfig was before the split: config.json files written then, `[train]` tables of
older TOML files and of sweep specs are read in it (`from_flat`, `sections`), and sweep cells keep it
(`flat`), so their ids, which hash it, are the same as before."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, fields

from memlab.diffusion.model_config import FAMILY_ONLY, ModelConfig
from memlab.diffusion.networks import FAMILIES
from memlab.errors import FieldError, UsageError, check_choice, check_float, check_int
from memlab.options import Section, from_dict, option

WEIGHTING_NAMES = ("eps", "x0-uniform", "elbo", "min-snr", "v")  # keys of objective.WEIGHTINGS
SEED_MODES = ("auto", "vmap", "sequential")
SAMPLER_NAMES = ("ddim", "ancestral")  # keys of sample.SAMPLERS
_LR_SHOWN = ", ".join(f"{name} {f.lr:g}" for name, f in FAMILIES.items())


def _seeds(text: str):
    """'3' -> 3 seeds; '0,4,7' -> those seeds."""
    try:
        parts = [int(p) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a count or a comma-separated list of integers, got {text!r}") from None
    return parts[0] if len(parts) == 1 and "," not in text else tuple(parts)


def _batch(text: str):
    if text == "full":
        return text  # OptimConfig turns it into None (full batch); None on the command line means "not given"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer or 'full', got {text!r}") from None


@dataclass(frozen=True)
class OptimConfig:
    """How the model is trained: Adam with warmup and linear decay on the weighted x0 loss."""

    steps: int = option(2000, "optimizer steps")
    lr: float | None = option(None, "peak learning rate", shown=_LR_SHOWN)  # None: the family's default
    warmup_frac: float = option(0.1, "fraction of the steps with a linear warmup from 0 to lr")
    final_lr: float = option(1e-6, "learning rate at the last step (linear decay from lr)")
    clip: float = option(1.0, "global gradient-norm clip")
    draws: int = option(16, "noise draws R per training point per step")
    batch: int | None = option(None, "training points per step, or 'full'", parse=_batch, shown="full",
                               metavar="N|full")  # None = full batch
    weighting: str = option("eps", "training objective (eps: the epsilon loss)", choices=WEIGHTING_NAMES)
    seeds: int | tuple[int, ...] = option(1, "seed count (data seed, +1, ...) or a comma-separated list",
                                          parse=_seeds, metavar="N|S1,S2,...")
    seed_mode: str = option("auto", "how seeds run (auto: vmap on accelerators)", choices=SEED_MODES)
    grid_points: int = option(26, "time-grid points (training, loss evaluation, sampling)", cli=False)

    def __post_init__(self):
        check_int("steps", self.steps, 0)
        if self.lr is not None:
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
        check_int("grid_points", self.grid_points, 2)

    def seed_list(self, data_seed: int = 0) -> tuple[int, ...]:
        return expand_seeds(self.seeds, data_seed)


@dataclass(frozen=True)
class EvalConfig:
    """What is measured at each checkpoint: per-t losses, samples, the memorization ratio."""

    samples: int = option(256, "DDIM samples per seed for the memorization ratio")
    n_checkpoints: int = option(8, "log-spaced evaluations, step 0 and the last step included",
                                flag="--checkpoints")
    sampler: str = option("ddim", "sampler", choices=SAMPLER_NAMES)
    threshold: float = option(1.0 / 3.0, "memorized when d1 < threshold * d2", shown="1/3")
    eval_draws: int = option(4, "noise draws per point for the per-t losses", cli=False)
    eval_test: int = option(1000, "test points used for the per-t test loss (at most)", cli=False)
    n_boot: int = option(1000, "bootstrap resamples of the memorization ratio", cli=False)

    def __post_init__(self):
        check_int("samples", self.samples, 1)
        check_int("n_checkpoints", self.n_checkpoints, 2)
        check_choice("sampler", self.sampler, SAMPLER_NAMES)
        check_float("threshold", self.threshold, 0.0, 1.0, lo_open=True, hi_open=True)
        check_int("eval_draws", self.eval_draws, 1)
        check_int("eval_test", self.eval_test, 1)
        check_int("n_boot", self.n_boot, 10)


PARTS = {"model": ModelConfig, "optim": OptimConfig, "eval": EvalConfig}
SECTIONS = [Section("model", ModelConfig, title="model"),
            Section("optim", OptimConfig, title="optimizer and objective"),
            Section("eval", EvalConfig, title="evaluation")]
_FLAT_NAME = {"family": "model"}  # part field -> its key in the flat layout (all others keep their names)
_PART_OF = {_FLAT_NAME.get(f.name, f.name): (part, f.name) for part, cls in PARTS.items() for f in fields(cls)}


@dataclass(frozen=True)
class TrainConfig:
    """One training configuration: model, optimizer, evaluation. Loss units: x0 unless a name says eps.
    An optimizer part without lr takes the model family's default."""

    model: ModelConfig = option(default_factory=ModelConfig, cli=False)
    optim: OptimConfig = option(default_factory=OptimConfig, cli=False)
    eval: EvalConfig = option(default_factory=EvalConfig, cli=False)

    def __post_init__(self):
        for name, cls in PARTS.items():
            if not isinstance(getattr(self, name), cls):
                raise UsageError(f"TrainConfig.{name} must be a {cls.__name__}, got {type(getattr(self, name)).__name__}")
        if self.optim.lr is None:
            object.__setattr__(self, "optim", dataclasses.replace(self.optim, lr=FAMILIES[self.model.family].lr))

    def tables(self) -> dict[str, dict]:
        """{part: fields}: the layout of config.json and of the TOML tables."""
        return {name: dataclasses.asdict(getattr(self, name)) for name in PARTS}

    def flat(self) -> dict:
        """Every field in one table (`model`: the family), family-only fields only for their family: the
        layout from before the split, which sweep cells hash."""
        out = {}
        for part, values in self.tables().items():
            for name, value in values.items():
                if part == "model" and name in FAMILY_ONLY and name not in self.model.options():
                    continue
                out[_FLAT_NAME.get(name, name)] = value
        return out

    @classmethod
    def from_flat(cls, values: dict, where: str = "config", *, qualify: bool = False) -> "TrainConfig":
        """Build from the flat layout (missing fields take their defaults)."""
        try:
            parts = split_flat(values, where)
            return cls(**{name: from_dict(PARTS[name], parts[name], where, qualify=qualify) for name in PARTS})
        except FieldError as e:
            if e.field == "family":  # the flat layout calls it `model`
                raise FieldError("model", e.problem, e.lead) from None
            raise

    def replace(self, **flat) -> "TrainConfig":
        """A copy with fields changed, named as in the flat layout (`size=50`, `steps=60`)."""
        return TrainConfig.from_flat({**self.flat(), **flat})


def split_flat(values: dict, where: str = "config") -> dict[str, dict]:
    """A flat table (possibly partial) as {part: fields}; an unknown key is refused, naming the allowed ones."""
    if not isinstance(values, dict):
        raise UsageError(f"{where} must be a table of TrainConfig fields, got {type(values).__name__}")
    unknown = sorted(set(values) - set(_PART_OF))
    if unknown:
        raise UsageError(f"unknown key {unknown[0]!r} in {where}; allowed: {', '.join(sorted(_PART_OF))}")
    parts: dict[str, dict] = {name: {} for name in PARTS}
    for key, value in values.items():
        part, name = _PART_OF[key]
        parts[part][name] = value
    return parts


def sections(tables: dict, where: str) -> dict:
    """TOML tables or a saved config with a flat [train] table (the layout before the split) in the current
    layout: [train]'s keys go to the parts' tables; the same key in both is refused."""
    if "train" not in tables:
        return tables
    out = {k: v for k, v in tables.items() if k != "train"}
    for part, values in split_flat(tables["train"], f"[train] of {where}").items():
        given = out.get(part, {})
        if not isinstance(given, dict):
            raise UsageError(f"[{part}] in {where} must be a table, got {type(given).__name__}")
        both = sorted(set(given) & set(values))
        if both:
            raise UsageError(f"{both[0]!r} is given in both [train] and [{part}] of {where}; give it once")
        if values or part in out:
            out[part] = {**given, **values}
    return out


def expand_seeds(seeds, data_seed: int = 0) -> tuple[int, ...]:
    """The training seeds that `seeds` names: a list as given, a count n as data seed + 0..n-1 (so runs on
    different data draws do not share training seeds)."""
    if isinstance(seeds, (list, tuple)):
        return tuple(int(s) for s in seeds)
    return tuple(data_seed + i for i in range(seeds))


TRAIN_DEFAULTS = {_FLAT_NAME.get(f.name, f.name): f.default for cls in PARTS.values() for f in fields(cls)
                  if f.name not in FAMILY_ONLY}  # the flat defaults (lr None: the family's)
