"""Sweep spec: a TOML file naming the data grid, the model and its size grid, seeds, training and sampling
settings, refinement and prediction settings. Validated on load; every error names the key and the
allowed values. No framework imports here: the training/prediction configs are resolved by callables
that the runner passes in (the real TrainConfig / CrossoverConfig by default)."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from memlab.config import DataConfig, from_dict, load_toml
from memlab.diffusion import networks
from memlab.errors import UsageError, check_choice, check_int
from memlab.options import option

MODELS = networks.NAMES
UNITS = ("fraction", "absolute")
SECTIONS = ("name", "data", "model", "seeds", "train", "sampling", "refine", "predict")
# may be lists (grid axes); the low-rank GMM's rank and noise are one value per sweep (the phase tables and
# the time-axis series are keyed by the columns of these axes)
DATA_AXES = ("dim", "components", "n_train", "variance", "seed")
RESERVED_TRAIN = ("model", "size", "depth", "seeds")  # set by the sweep, not by [train]


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep. `sizes` are M/N fractions (unit fraction, mixtures) or absolute sizes (M, or a
    network's width or base channels)."""

    name: str
    data: tuple[DataConfig, ...]
    model: str = "mixture"
    unit: str = "fraction"
    sizes: tuple[float, ...] = (0.1, 0.5, 1.0)
    depth: int | None = None
    seeds: int = 3
    train: dict = field(default_factory=dict)
    refine_rounds: int = 0
    refine_points: int = 3
    predict: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict, compare=False, repr=False)  # the TOML tables it was parsed from

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("source")
        d["data"] = [data_fields(c) for c in self.data]  # as hashed: earlier sweeps' saved specs still match
        d["sizes"] = list(self.sizes)
        return d


@dataclass(frozen=True)
class Cell:
    """One `memlab train` run: a data configuration, an absolute size, and the resolved training config
    (a plain dict of TrainConfig fields, seeds included). `stage` 0 is the coarse grid, r > 0 refinement."""

    data: DataConfig
    size: int
    train: dict
    stage: int = 0

    @property
    def data_key(self) -> str:
        return data_key(self.data)

    @property
    def cell_id(self) -> str:
        # The stage is not part of the identity: a size is the same run whichever round asked for it.
        return _digest({"data": data_fields(self.data), "train": self.train})


def _digest(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


LOWRANK_ONLY = ("rank", "noise")  # DataConfig fields that only the low-rank GMM reads


def data_fields(cfg: DataConfig) -> dict:
    """The data config as hashed into cell ids and data keys and saved in the spec: without the low-rank GMM's
    own fields for the other datasets, so that sweeps from before those fields existed keep their cell ids
    and resume (their saved spec compares equal)."""
    d = dataclasses.asdict(cfg)
    if cfg.dataset != "lowrank-gmm":
        for name in LOWRANK_ONLY:
            d.pop(name)
    return d


def data_key(cfg: DataConfig) -> str:
    return _digest(data_fields(cfg))


def _table(raw: dict, key: str) -> dict:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise UsageError(f"[{key}] must be a table, got {type(value).__name__}")
    return dict(value)


def _as_list(key: str, value, kind) -> list:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise UsageError(f"{key} must not be an empty list")
    for v in values:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) if kind is float else (
            isinstance(v, int) and not isinstance(v, bool))
        if not ok:
            raise UsageError(f"{key} must be {'a number' if kind is float else 'an integer'} or a list of them, got {v!r}")
    return [kind(v) for v in values]


def _int(key: str, value, lo: int, hi: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < lo or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise UsageError(f"{key} must be an integer {rng}, got {value!r}")
    return value


def parse_data(table: dict) -> tuple[DataConfig, ...]:
    names = {f.name for f in dataclasses.fields(DataConfig)}
    unknown = sorted(set(table) - names)
    if unknown:
        raise UsageError(f"unknown key {unknown[0]!r} in [data]; allowed: {', '.join(sorted(names))}")
    for k in LOWRANK_ONLY:
        if isinstance(table.get(k), list):
            raise UsageError(f"data.{k} must be one value per sweep (not a grid axis), got {table[k]!r}")
    axes = {k: _as_list(f"data.{k}", table[k], float if k == "variance" else int) for k in DATA_AXES if k in table}
    fixed = {k: v for k, v in table.items() if k not in axes}
    configs = []
    for combo in itertools.product(*axes.values()):
        values = dict(fixed, **dict(zip(axes, combo)))
        if values.get("dataset", "gmm") == "templates":
            values.pop("dim", None)  # templates have their own dimension C*H*W
        configs.append(from_dict(DataConfig, values, "sweep spec [data]", qualify=True))
    return tuple(dict.fromkeys(configs))  # a templates grid over dim would repeat configs


def parse_spec(raw: dict[str, Any]) -> SweepSpec:
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise UsageError(f"unknown key {unknown[0]!r} in sweep spec; allowed: {', '.join(SECTIONS)}")
    name = raw.get("name", "sweep")
    if not isinstance(name, str) or not name:
        raise UsageError(f"name must be a non-empty string, got {name!r}")
    if "data" not in raw:
        raise UsageError("sweep spec needs a [data] table (dataset, dim, components, n_train, ...)")
    data = parse_data(_table(raw, "data"))

    model = _table(raw, "model")
    allowed = ("kind", "unit", "sizes", "depth")
    bad = sorted(set(model) - set(allowed))
    if bad:
        raise UsageError(f"unknown key {bad[0]!r} in [model]; allowed: {', '.join(allowed)}")
    kind = model.get("kind", "mixture")
    check_choice("model.kind", kind, MODELS)
    family = networks.spec(kind)
    unit = model.get("unit", "fraction" if family.m_is_size else "absolute")
    check_choice("model.unit", unit, UNITS)
    if not family.m_is_size and unit == "fraction":
        raise UsageError(f"model.unit must be 'absolute' for kind = {kind!r} (sizes are its {family.size}; M/N is "
                         "measured as parameter count / d / N)")
    if "sizes" not in model:
        raise UsageError("model.sizes is required: a list of M/N fractions (unit fraction) or absolute sizes")
    sizes = _as_list("model.sizes", model["sizes"], float if unit == "fraction" else int)
    for s in sizes:
        if unit == "fraction" and not 0 < s <= 4:
            raise UsageError(f"model.sizes must be fractions of N in (0, 4], got {s}")
        if unit == "absolute" and s < 1:
            raise UsageError(f"model.sizes must be >= 1 for unit absolute, got {s}")
    depth = model.get("depth")
    if depth is not None:
        if family.depth == "unused":
            raise UsageError(f"model.depth does not apply to kind = {kind!r}")
        _int("model.depth", depth, 1)
    if family.images:
        flat = [c for c in data if c.dataset != "templates"]
        if flat:
            raise UsageError(f"model.kind = {kind!r} needs image-shaped data: [data] dataset = 'templates', "
                             f"got {flat[0].dataset!r}")

    seeds_t = _table(raw, "seeds")
    bad = sorted(set(seeds_t) - {"count"})
    if bad:
        raise UsageError(f"unknown key {bad[0]!r} in [seeds]; allowed: count")
    seeds = _int("seeds.count", seeds_t.get("count", 3), 1)

    train, sampling = _table(raw, "train"), _table(raw, "sampling")
    for key in sorted(set(train) | set(sampling)):
        if key in RESERVED_TRAIN:
            raise UsageError(f"[train] key {key!r} is set by the sweep; use [model] kind/sizes/depth and [seeds] count")
    both = sorted(set(train) & set(sampling))
    if both:
        raise UsageError(f"key {both[0]!r} is in both [train] and [sampling]; give it once")

    refine = _table(raw, "refine")
    bad = sorted(set(refine) - {"rounds", "points"})
    if bad:
        raise UsageError(f"unknown key {bad[0]!r} in [refine]; allowed: points, rounds")
    rounds = _int("refine.rounds", refine.get("rounds", 0), 0, 5)
    points = _int("refine.points", refine.get("points", 3), 1, 50)

    return SweepSpec(name=name, data=data, model=kind, unit=unit, sizes=tuple(sizes), depth=depth, seeds=seeds,
                     train={**train, **sampling}, refine_rounds=rounds, refine_points=points,
                     predict=_table(raw, "predict"), source=dict(raw))


def load_spec(path: str | Path) -> SweepSpec:
    return parse_spec(load_toml(path))


def absolute_sizes(spec: SweepSpec, cfg: DataConfig) -> list[int]:
    """The coarse sizes of one data configuration (the family's size knob), sorted, deduplicated."""
    if spec.unit == "fraction":
        return sorted({max(1, round(f * cfg.n_train)) for f in spec.sizes})
    return sorted({int(s) for s in spec.sizes})


def train_fields(spec: SweepSpec, size: int) -> dict[str, Any]:
    """The TrainConfig fields of one cell before defaults are filled in."""
    values = dict(spec.train, model=spec.model, size=int(size), seeds=spec.seeds)
    if spec.depth is not None:
        values["depth"] = spec.depth
    return values


def make_cells(spec: SweepSpec, cfg: DataConfig, sizes, resolve_train: Callable[[dict], dict],
               stage: int = 0) -> list[Cell]:
    return [Cell(cfg, int(s), resolve_train(train_fields(spec, s)), stage) for s in sizes]


def refined_sizes(sizes: list[int], mean_ratio: list[float], points: int) -> list[int]:
    """Up to `points` new sizes strictly between the last size with mean ratio < 0.1 (below the first size
    with ratio >= 0.9) and that first size: each goes to the middle of the widest remaining gap inside
    that bracket, so a bracket already on a fine grid still gets refined. [] when there is no bracket
    or no integer room left in it."""
    order = sorted(range(len(sizes)), key=lambda i: sizes[i])
    xs = [sizes[i] for i in order]
    ys = [mean_ratio[i] for i in order]
    hi = next((i for i, y in enumerate(ys) if y >= 0.9), None)
    if hi is None:
        return []
    lo = max((i for i in range(hi) if ys[i] < 0.1), default=None)
    if lo is None:
        return []
    inside = xs[lo:hi + 1]
    new: list[int] = []
    for _ in range(points):
        gaps = [(b - a, a, b) for a, b in zip(inside, inside[1:]) if b - a >= 2]
        if not gaps:
            break
        width, a, _ = max(gaps, key=lambda g: (g[0], -g[1]))  # widest; the smallest sizes first on ties
        mid = a + width // 2
        new.append(mid)
        inside = sorted(inside + [mid])
    return sorted(new)


@dataclass(frozen=True)
class RunnerConfig:
    """How `memlab sweep run` executes the cells (not part of the sweep's identity)."""

    backend: str = option("local", "local (a process pool) or ray", choices=("local", "ray"))
    address: str | None = option(None, "ray: address of an existing cluster", shown="start a local one")
    workers: int | None = option(None, "parallel cells", shown="the machine's CPU count")
    retry_failed: bool = option(False, "run cells recorded as failed again")
    save_runs: bool = option(True, "keep each cell's train run directory under DIR/runs", flag="--runs")

    def __post_init__(self):
        check_choice("backend", self.backend, ("local", "ray"))
        if self.workers is not None:
            check_int("workers", self.workers, 1)
