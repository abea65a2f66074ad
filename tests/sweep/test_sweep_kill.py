"""`kill -9` of the runner at any moment, then a re-run, gives the same final table as an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from memlab.sweep.runner import run_sweep
from sweep_standin import STANDINS

HERE = Path(__file__).parent
SPEC = {"name": "kill", "data": {"dim": 3, "components": 2, "n_train": [40, 80]},
        "model": {"sizes": [0.1, 0.2, 0.3, 0.5, 0.7, 1.0]}, "seeds": {"count": 2}, "refine": {"rounds": 1, "points": 2}}
SCRIPT = f"""
import sys
from memlab.sweep.runner import run_sweep
from memlab.sweep.spec import parse_spec
from sweep_standin import STANDINS
run_sweep(parse_spec({SPEC!r}), sys.argv[1], workers=2, progress=False, **STANDINS)
"""


def _start(out: Path, sleep: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(HERE), MEMLAB_STANDIN_SLEEP=sleep)
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(out)], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _rows(out: Path) -> int:
    return len(list((out / "rows").glob("*.parquet"))) if (out / "rows").is_dir() else 0


def _kill_after(out: Path, n_rows: int, sleep: str, timeout: float = 60) -> int:
    proc = _start(out, sleep)
    deadline = time.time() + timeout
    while _rows(out) < n_rows and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return _rows(out)


def test_kill_9_then_rerun_equals_an_uninterrupted_run(tmp_path):
    from memlab.sweep.spec import parse_spec

    reference = run_sweep(parse_spec(SPEC), tmp_path / "ref", workers=1, progress=False, **STANDINS)
    out = tmp_path / "killed"
    first = _kill_after(out, 3, sleep="0.25")
    second = _kill_after(out, first + 2, sleep="0.25")
    assert 3 <= first < len(reference["cell_id"].unique())  # it really was interrupted mid-sweep
    assert second >= first
    done = _start(out, sleep="0")
    assert done.wait(timeout=120) == 0
    resumed = pd.read_parquet(out / "results.parquet")
    cols = [c for c in reference.columns if c != "wall_s"]  # wall time is the only machine-dependent column
    pd.testing.assert_frame_equal(resumed[cols], reference[cols])
    assert set(reference["stage"]) == {0, 1}  # refinement ran too, and chose the same sizes after the kills
    assert not list((out / "rows").glob(".*.tmp"))
