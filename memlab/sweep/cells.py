"""One cell of a sweep: run it as a `memlab train` run and turn its result into table rows (one per seed).

The real training and prediction are reached through the small wrappers below, imported lazily so that
this module (and the sweep spec) load without JAX. The runner takes these functions as parameters, so a
test can substitute a stand-in cell function; the product always uses these."""

from __future__ import annotations

import dataclasses
import json
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from memlab.config import DataConfig, from_dict, load_dataset
from memlab.diffusion import networks
from memlab.sweep.spec import Cell

CellFn = Callable[..., dict]  # (data_cfg, train_fields, out_dir, resume) -> train_and_evaluate's result


def resolve_train(fields: dict[str, Any]) -> dict[str, Any]:
    """Validate TrainConfig fields (flat layout) and fill in the defaults: the resolved config hashed into
    cell ids, in the layout from before TrainConfig's split, so that ids stay what they were."""
    from memlab.diffusion.run import TrainConfig

    return TrainConfig.from_flat(fields, "sweep spec [train]", qualify=True).flat()


def train_cell(data_cfg: DataConfig, train_fields: dict[str, Any], out_dir: Path | None, resume: bool) -> dict:
    """The real cell function: `memlab train` (memlab.diffusion.run.train_and_evaluate)."""
    from memlab.diffusion.run import TrainConfig, train_and_evaluate

    cfg = TrainConfig.from_flat(train_fields, "[train]")
    return train_and_evaluate(data_cfg, cfg, out_dir=out_dir, resume=resume, progress=False)


def resolve_predict(fields: dict[str, Any], train: dict[str, Any], data_cfg: DataConfig) -> dict[str, Any]:
    """CrossoverConfig fields, defaults filled in. Unless [predict] says otherwise, the prediction uses the
    training weighting and time grid (it is about the objective the models were trained on), and at most
    N model sizes."""
    from memlab.crossover.predict import CrossoverConfig

    values = dict(fields)
    if "weighting" not in values and train.get("weighting") is not None:
        values["weighting"] = train["weighting"]
    if "time_points" not in values and train.get("grid_points"):
        values["time_points"] = int(train["grid_points"])
    if "grid" not in values:
        values["grid"] = min(CrossoverConfig.grid, data_cfg.n_train)
    cfg = from_dict(CrossoverConfig, values, "sweep spec [predict]", qualify=True)
    cfg.check_against(data_cfg)
    return dataclasses.asdict(cfg)


def predict_data(data_cfg: DataConfig, predict_fields: dict[str, Any]) -> dict:
    """The real prediction: memlab.crossover.predict.predict for one data configuration."""
    from memlab.crossover.predict import CrossoverConfig, predict

    return predict(data_cfg, from_dict(CrossoverConfig, predict_fields, "[predict]"))


def execute_cell(cell: Cell, run_dir: Path | None, cell_fn: CellFn) -> list[dict[str, Any]]:
    """Run one cell; never raises. A failure becomes one row per seed with status 'failed' and the error,
    so the sweep goes on and the table says what went wrong."""
    start = time.perf_counter()
    try:
        # continue a cell whose run a killed sweep left half-done; start the others
        resume = run_dir is not None and run_dir.is_dir() and any(run_dir.iterdir())
        result = cell_fn(cell.data, dict(cell.train), run_dir, resume)
        dim = int(result["dim"]) if result.get("dim") else load_dataset(cell.data).dim
        rows = result_rows(cell, result, dim)
    except Exception as e:  # noqa: BLE001 - any error of one cell is recorded, not fatal to the sweep
        detail = traceback.format_exception_only(type(e), e)[-1].strip()
        rows = [failed_row(cell, seed, detail) for seed in seed_list(cell)]
    wall = time.perf_counter() - start
    for r in rows:
        r["wall_s"] = wall
    return rows


def seed_list(cell: Cell) -> list[int]:
    """The training seeds of a cell, read from its raw fields (a failed cell's config may not validate)."""
    from memlab.diffusion.train_config import expand_seeds

    return list(expand_seeds(cell.train.get("seeds", 1), cell.data.seed))


def _num(v) -> float:
    return float("nan") if v is None else float(v)


def _base(cell: Cell) -> dict[str, Any]:
    d = cell.data
    return {
        "cell_id": cell.cell_id, "data_key": cell.data_key, "stage": cell.stage,
        "dataset": d.dataset, "components": d.components, "n_train": d.n_train, "variance": d.variance,
        "data_seed": d.seed, "model": cell.train.get("model"), "size": cell.size,
        "n_samples": int(cell.train.get("samples", 0) or 0),
        "config_json": json.dumps({"data": dataclasses.asdict(d), "train": cell.train}, sort_keys=True, default=str),
    }


NUMERIC = ("dim", "param_count", "m_eff", "m_over_n", "memorization_ratio", "ratio_lo", "ratio_hi")


def failed_row(cell: Cell, seed: int, error: str) -> dict[str, Any]:
    row = _base(cell)
    row.update({k: float("nan") for k in NUMERIC})
    row.update(seed=seed, status="failed", error=error, per_t_json="[]", checkpoints_json="[]")
    return row


def result_rows(cell: Cell, result: dict, dim: int) -> list[dict[str, Any]]:
    """One row per seed. M (m_eff) is the family's size on the crossover's axis (networks.FamilySpec:
    the number of components for a mixture, parameter count / d for a neural denoiser), so that M/N is
    comparable with the crossover's M*/N."""
    per_seed = result.get("per_seed") or [dict(result, seed=0)]
    family = networks.spec(cell.train.get("model", "mixture"))
    rows = []
    for s in per_seed:
        params = s.get("param_count", result.get("param_count"))
        m_eff = family.effective_size(cell.size, params, dim)
        lo, hi = s.get("interval") or [None, None]  # a diverged seed has no ratio and no interval
        row = _base(cell)
        status = str(s.get("status", result.get("status", "ok")))
        row.update(seed=int(s["seed"]), status=status, error="" if status == "ok" else status,
                   dim=float(dim), param_count=_num(params), m_eff=m_eff, m_over_n=m_eff / cell.data.n_train,
                   memorization_ratio=_num(s.get("memorization_ratio")), ratio_lo=_num(lo), ratio_hi=_num(hi),
                   per_t_json=json.dumps(s.get("per_t", [])), checkpoints_json=json.dumps(s.get("checkpoints", [])))
        rows.append(row)
    return rows
