"""The localizer leaderboard through the sweep runner (issue 13): the 8x8 acceptance spec
(settings/localizers_8x8.toml) is valid for memlab's parser and orders its jobs, and a tiny real job sweep on
the local backend trains two seeds and runs `memlab iar localizers` on each, then resumes without rerunning."""

import json
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from memlab.cli import main
from memlab.sweep.job_spec import check_memlab_argv, parse_job_spec

ROOT = Path(__file__).parents[2]


def test_the_localizers_acceptance_spec_is_valid_and_ordered():
    raw = tomllib.loads((ROOT / "settings" / "localizers_8x8.toml").read_text())
    spec = parse_job_spec(raw, Path("/R"), check_argv=check_memlab_argv)
    waves = [[j.name for j in wave] for wave in spec.levels()]
    assert len(spec.jobs) == 12 and [len(w) for w in waves] == [4, 4, 4]
    assert all(n.startswith(p) for p, w in zip(("base-", "leaderboard-memorized-", "leaderboard-final-"), waves)
               for n in w)
    final = {j.name: j for j in spec.jobs}["leaderboard-final-raster-s1"]
    assert set(final.needs) == {"base-raster-s1", "leaderboard-memorized-raster-s1"} and not final.writes_run
    argv = final.argv(Path("/R/x"))
    assert argv[:3] == ["iar", "localizers", "/R/base-raster-s1"] and "--inject" in argv and "--per-scale" in argv
    assert argv[argv.index("--seeds") + 1] == "0,1"
    base = {j.name: j for j in spec.jobs}["base-next-scale-s0"].argv(Path("/R/x"))
    assert base[base.index("--config") + 1] == "settings/iar_8x8.toml" and base[base.index("--epochs") + 1] == "60"


TINY = {"n_train": 8, "n_heldout": 4, "duplicates": 3, "n_duplicated": 2, "epochs": 4, "tokenizer_epochs": 1,
        "width": 32, "depth": 1, "heads": 2, "codebook_size": 16, "tokenizer_channels": [8, 8, 8],
        "latent_channels": 4, "batch_size": 4, "lr": 5e-3}
SMALL = {"methods": ["activation", "zero-out"], "ks": [10], "factors": [0], "cloud_ks": [5, 20], "n_samples": 16,
         "n_boot": 50, "candidates": 4}


@pytest.mark.slow  # ~1.5 min idle, 4.5 min on a loaded machine: two tiny trainings and two small leaderboards in subprocesses
def test_a_tiny_localizers_job_sweep_runs_on_the_local_backend_and_resumes(tmp_path, capsys):
    def table(d):
        return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in d.items()) + " }"

    spec = tmp_path / "jobs.toml"
    spec.write_text(f'name = "tiny-localizers"\n[defaults."iar train"]\nthreads = 1\n'
                    f'[defaults."iar localizers"]\n{chr(10).join(f"{k} = {json.dumps(v)}" for k, v in SMALL.items())}\n'
                    f'[[job]]\nname = "base-s{{seed}}"\ncommand = "iar train"\n'
                    f'args = {table({**TINY, "arch": "raster", "seed": "{seed}"})}\ngrid = {{ seed = [0, 1] }}\n'
                    f'[[job]]\nname = "lb-s{{seed}}"\ncommand = "iar localizers"\nout = false\n'
                    f'inputs = ["{{run:base-s{{seed}}}}"]\ngrid = {{ seed = [0, 1] }}\n')
    out = tmp_path / "out"
    assert main(["sweep", "run", str(spec), "--out", str(out), "--workers", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert sorted((r["job"], r["status"]) for r in result["rows"]) == [
        ("base-s0", "ok"), ("base-s1", "ok"), ("lb-s0", "ok"), ("lb-s1", "ok")]
    boards = [pd.read_csv(out / "runs" / f"base-s{s}" / "leaderboard" / "leaderboard.csv") for s in (0, 1)]
    assert all(b["method"].tolist() == ["activation", "zero-out"] for b in boards)
    assert all((out / "runs" / f"base-s{s}" / "leaderboard" / "where.csv").is_file() for s in (0, 1))
    assert main(["sweep", "run", "--resume", "--out", str(out), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["failed"] == 0 and sorted(r["wall_s"] for r in again["rows"]) == sorted(
        r["wall_s"] for r in result["rows"])
