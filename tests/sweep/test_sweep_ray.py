"""The Ray backend (a local Ray instance) gives the same table as the local process pool."""

from pathlib import Path

import pandas as pd
import pytest

from memlab.sweep.runner import run_sweep
from memlab.sweep.spec import parse_spec
from sweep_standin import STANDINS

pytestmark = pytest.mark.slow  # starting a local Ray instance takes 20-80 s on 2 shared cores


def test_ray_backend_matches_local(tmp_path, monkeypatch):
    pytest.importorskip("ray")  # the optional extra: `pip install -e '.[ray]'`
    # the local Ray workers are new processes: they find the stand-in module through PYTHONPATH
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    spec = parse_spec({"name": "ray", "data": {"dim": 3, "components": 2, "n_train": 40},
                       "model": {"sizes": [0.1, 0.4, 0.6, 1.0]}, "seeds": {"count": 2},
                       "refine": {"rounds": 1, "points": 2}})
    monkeypatch.setenv("MEMLAB_STANDIN_FAIL", "16")  # a failing cell is recorded on Ray too
    local = run_sweep(spec, tmp_path / "local", workers=1, progress=False, **STANDINS)
    ray_table = run_sweep(spec, tmp_path / "ray", backend="ray", workers=2, progress=False, **STANDINS)
    cols = [c for c in local.columns if c != "wall_s"]
    pd.testing.assert_frame_equal(ray_table[cols], local[cols])
    assert (ray_table["status"] == "failed").sum() == 2 and set(ray_table["stage"]) == {0, 1}
