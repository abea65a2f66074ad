"""Resumable result store of a sweep directory:

    DIR/config.json               {"kind": "sweep", "spec": the validated spec, "source": the TOML tables}
                                  (memlab.rundir; a re-run with a different spec is refused)
    DIR/metrics.json              written when the sweep finishes (rows, failed, cells)
    DIR/rows/<cell_id>.parquet    one file per finished cell: one row per (cell, seed); written atomically
    DIR/predictions/<key>.json    the crossover prediction of each data configuration
    DIR/results.parquet           the consolidated table (all rows, sorted), rewritten atomically
    DIR/runs/<cell_id>/           the `memlab train` run of each cell (config, metrics, checkpoints)

A cell counts as done exactly when its row file exists; a write never leaves a partial file behind
(temporary name + os.replace), so `kill -9` at any moment loses at most the cells in flight."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from memlab.errors import UsageError
from memlab.io import normalize_json, read_json, read_parquet, write_json, write_parquet
from memlab.rundir import CONFIG

SORT_KEYS = ["data_key", "size", "seed"]
# Columns that measure the machine, not the science: the only ones that differ between two runs.
TIMING_COLUMNS = ["wall_s"]


class SweepStore:
    sort_keys = SORT_KEYS  # a row file's identity columns; named jobs (memlab/sweep/jobs.py) use ["job"]

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.rows_dir = self.root / "rows"
        self.pred_dir = self.root / "predictions"
        self.runs_dir = self.root / "runs"
        self.table_path = self.root / "results.parquet"

    # --- the spec ------------------------------------------------------------------------------------
    def check_spec(self, spec_json: dict[str, Any]) -> None:
        """Refuse (before anything is written) to mix two different sweeps in one directory."""
        saved = self.saved_spec()
        if saved is not None and saved != normalize_json(spec_json):
            raise UsageError(f"--out {self.root} holds a different sweep (its spec differs); use a new --out "
                             "or the same spec to resume")

    def saved_spec(self) -> dict[str, Any] | None:
        """The validated spec recorded in config.json (or spec.json, in sweeps from before run kinds)."""
        cfg = self.root / CONFIG
        if cfg.is_file():
            raw = read_json(cfg)
            if isinstance(raw, dict) and isinstance(raw.get("spec"), dict):
                return raw["spec"]
        legacy = self.root / "spec.json"
        return read_json(legacy) if legacy.is_file() else None

    def read_spec(self) -> dict[str, Any]:
        spec = self.saved_spec()
        if spec is None:
            raise UsageError(f"{self.root} is not a sweep directory (no config.json with a spec); "
                             "run `memlab sweep run` first")
        return spec

    # --- rows ----------------------------------------------------------------------------------------
    def row_path(self, cell_id: str) -> Path:
        return self.rows_dir / f"{cell_id}.parquet"

    def is_done(self, cell_id: str) -> bool:
        return self.row_path(cell_id).is_file()

    def read_rows(self, path: Path) -> pd.DataFrame:
        """One row file; a damaged one (unreadable, no rows, no key or status column) is a UsageError naming it."""
        df = read_parquet(path, what="row file")
        missing = [c for c in (*self.sort_keys, "status") if c not in df.columns]
        if missing or not len(df):
            problem = f"no column {missing[0]!r}" if missing else "no rows"
            raise UsageError(f"damaged row file {path}: {problem}; delete it to re-run that cell")
        return df

    def cell_status(self, cell_id: str) -> str | None:
        if not self.is_done(cell_id):
            return None
        return str(self.read_rows(self.row_path(cell_id))["status"].iloc[0])

    def write_cell(self, cell_id: str, rows: list[dict[str, Any]]) -> None:
        write_parquet(self.row_path(cell_id), pd.DataFrame(rows))

    def clean_tmp(self) -> None:
        """Remove temporary files a killed writer left behind (never a finished file)."""
        for d in (self.rows_dir, self.pred_dir, self.root):
            if d.is_dir():
                for p in d.glob(".*.tmp"):
                    p.unlink(missing_ok=True)

    def table(self) -> pd.DataFrame:
        """All finished rows, sorted by (data configuration, size, seed); empty frame when none."""
        files = sorted(self.rows_dir.glob("*.parquet")) if self.rows_dir.is_dir() else []
        if not files:
            return pd.DataFrame()
        df = pd.concat([self.read_rows(f) for f in files], ignore_index=True)
        return df.sort_values(self.sort_keys, kind="stable").reset_index(drop=True)

    def consolidate(self) -> pd.DataFrame:
        df = self.table()
        if len(df):
            write_parquet(self.table_path, df)
        return df

    # --- predictions ---------------------------------------------------------------------------------
    def prediction_path(self, key: str) -> Path:
        return self.pred_dir / f"{key}.json"

    def write_prediction(self, key: str, pred: dict[str, Any]) -> None:
        write_json(self.prediction_path(key), pred)

    def read_prediction(self, key: str) -> dict[str, Any] | None:
        """The saved prediction of one data configuration (None when there is none yet); one of another
        shape is a UsageError naming the file."""
        path = self.prediction_path(key)
        if not path.is_file():
            return None
        pred = read_json(path)
        value = pred.get("m_star_over_n") if isinstance(pred, dict) else None
        interval = pred.get("interval") if isinstance(pred, dict) else None
        ok = (isinstance(pred, dict) and (value is None or _number(value)) and isinstance(interval, list)
              and len(interval) == 2 and all(v is None or _number(v) for v in interval))
        if not ok:
            raise UsageError(f"damaged prediction {path}: expected an object with a number m_star_over_n "
                             "(or null) and a 2-number interval")
        return pred


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def load_table(root: str | Path) -> pd.DataFrame:
    """The table of a sweep directory, for pandas users: same rows as results.parquet."""
    store = SweepStore(root)
    store.read_spec()
    return store.table()
