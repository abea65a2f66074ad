"""A damaged row file of a sweep is one UsageError "damaged row file PATH: ...", from the store, from
load_table and through `memlab phase summary` (exit 2, one line), and nothing in the sweep is rewritten."""

from pathlib import Path

import pandas as pd
import pytest

from memlab.cli import main
from memlab.errors import UsageError
from memlab.sweep.runner import run_sweep
from memlab.sweep.spec import parse_spec
from memlab.sweep.store import SweepStore, load_table
from sweep_standin import STANDINS
from tests.cli.malformed_fixtures import garble, listing, truncate


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "s"
    spec = parse_spec({"name": "damage", "data": {"dim": 3, "components": 2, "n_train": [20]},
                       "model": {"sizes": [0.5, 1.0]}, "seeds": {"count": 1}})
    run_sweep(spec, out, workers=1, progress=False, **STANDINS)
    assert len(list((out / "rows").glob("*.parquet"))) == 2
    return out


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def _first_row_file(root: Path) -> Path:
    return min((root / "rows").glob("*.parquet"))


DAMAGE = {
    "truncated": truncate,
    "garbage": garble,
    "empty": lambda f: f.write_bytes(b""),
    "no-status": lambda f: pd.read_parquet(f).drop(columns=["status"]).to_parquet(f),
    "no-rows": lambda f: pd.read_parquet(f).iloc[:0].to_parquet(f),
}


@pytest.mark.parametrize("how", list(DAMAGE))
def test_damaged_row_file_is_named(sweep, tmp_path, how):
    root = _copy(sweep, tmp_path / "s")
    row = _first_row_file(root)
    DAMAGE[how](row)
    before = listing(root)
    store = SweepStore(root)
    cell = row.stem
    for call in (store.table, lambda: store.cell_status(cell), lambda: load_table(root), store.consolidate):
        with pytest.raises(UsageError) as err:
            call()
        msg = str(err.value)
        assert msg.startswith(f"damaged row file {row}: ") and "\n" not in msg, msg
    assert listing(root) == before  # consolidate never rewrote results.parquet


def test_intact_rows_still_read(sweep):
    store = SweepStore(sweep)
    assert len(store.table()) == 2 and {store.cell_status(f.stem) for f in (sweep / "rows").glob("*.parquet")} == {"ok"}


@pytest.mark.parametrize("argv", [["phase", "summary", "{root}", "--boot", "20"],
                                  ["sweep", "run", "--resume", "--out", "{root}", "--workers", "1"]])
def test_commands_reading_a_damaged_row_exit_2_and_rewrite_nothing(sweep, tmp_path, capsys, argv):
    root = _copy(sweep, tmp_path / "s")
    row = truncate(_first_row_file(root))
    before = listing(root)
    capsys.readouterr()
    assert main([a.format(root=root) for a in argv]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and f"damaged row file {row}" in lines[0], err
    assert listing(root) == before
