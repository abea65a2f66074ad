"""Named jobs through the sweep runner: spec parsing (grids, {run:NAME} dependencies, defaults per
command, memlab's own parser on every command line), bad specs exit 2 with one line and write nothing,
waves and resume (done jobs are not run again, a half-written run gets --resume, a failed dependency
blocks its dependents), and one real end to end job sweep of `memlab iar train` + `memlab iar localize`."""

import json
import tomllib
from pathlib import Path

import pytest

from memlab.cli import main
from memlab.errors import UsageError
from memlab.sweep.job_spec import parse_job_spec
from memlab.sweep.jobs import run_jobs

RUNS = Path("/R")


def _spec(jobs, defaults=None, check=lambda job: None):
    raw = {"name": "t", "job": jobs, **({"defaults": defaults} if defaults else {})}
    return parse_job_spec(raw, RUNS, check_argv=check)


def test_grid_defaults_and_run_references_expand_into_command_lines():
    spec = _spec([{"name": "base-{arch}-s{seed}", "command": "iar train",
                   "args": {"arch": "{arch}", "seed": "{seed}", "stop_when_memorized": True, "resume_x": False,
                            "targets": [1, 2]},
                   "grid": {"arch": ["raster", "next-scale"], "seed": [0, 1]}},
                  {"name": "loc-{seed}", "command": "iar localize", "out": False,
                   "inputs": ["{run:base-raster-s{seed}}"], "grid": {"seed": [0, 1]}}],
                 defaults={"iar train": {"threads": 1}})
    names = [j.name for j in spec.jobs]
    assert names == ["base-raster-s0", "base-raster-s1", "base-next-scale-s0", "base-next-scale-s1", "loc-0", "loc-1"]
    first = spec.jobs[0]
    assert first.argv(Path("/o")) == ["iar", "train", "--threads", "1", "--arch", "raster", "--seed", "0",
                                      "--stop-when-memorized", "--targets", "1,2", "--out", "/o"]
    assert first.argv(Path("/o"), resume=True)[-1] == "--resume"
    loc = spec.jobs[5]
    assert loc.needs == ("base-raster-s1",) and loc.argv(Path("/o")) == ["iar", "localize", "/R/base-raster-s1"]
    assert [[j.name for j in w] for w in spec.levels()] == [names[:4], names[4:]]


@pytest.mark.parametrize("jobs, message", [
    ([{"name": "a", "command": "iar train", "args": {"out": "x"}}], "'out' is set by the runner"),
    ([{"name": "a", "command": "iar train"}, {"name": "a", "command": "iar train"}], "two jobs are named 'a'"),
    ([{"name": "a-{seed}", "command": "iar train", "grid": {"arch": ["raster"]}}], "{seed} is not a key of the job's grid"),
    ([{"name": "a", "command": "iar train", "args": {"x": "{run:b}"}}], "needs 'b'"),
    ([{"name": "a", "command": "iar train", "after": ["b"]}, {"name": "b", "command": "iar train", "after": ["a"]}],
     "wait for each other in a cycle"),
    ([{"name": "a/b", "command": "iar train"}], "a job name is letters"),
    ([{"name": "a", "command": "iar train", "colour": "red"}], "unknown key 'colour'"),
    ([{"name": "a", "command": "iar train", "args": {"lr": {"x": 1}}}], "must be a string, number, boolean"),
])
def test_malformed_job_specs_are_refused(jobs, message):
    with pytest.raises(UsageError, match=message.replace("{", r"\{").replace("}", r"\}").replace("(", r"\(")):
        _spec(jobs)


def test_every_command_line_is_checked_by_memlabs_parser():
    from memlab.sweep.job_spec import check_memlab_argv

    with pytest.raises(UsageError, match="job 'a': memlab: unrecognized arguments: --bogus 1"):
        _spec([{"name": "a", "command": "iar train", "args": {"bogus": 1}}], check=check_memlab_argv)
    with pytest.raises(UsageError, match="job 'a': .*invalid choice: 'tran'"):
        _spec([{"name": "a", "command": "iar tran"}], check=check_memlab_argv)


def test_bad_job_spec_on_the_command_line_exits_2_and_writes_nothing(tmp_path, capsys):
    spec = tmp_path / "jobs.toml"
    spec.write_text('name = "x"\n[[job]]\nname = "a"\ncommand = "iar train"\nargs = { epochs = -3, bogus = 1 }\n')
    out = tmp_path / "out"
    assert main(["sweep", "run", str(spec), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unrecognized arguments: --bogus 1" in err
    assert not out.exists()


def test_job_template_is_printed_and_valid(capsys):
    from memlab.sweep.job_spec import check_memlab_argv

    assert main(["sweep", "template", "--jobs"]) == 0
    spec = parse_job_spec(tomllib.loads(capsys.readouterr().out), RUNS, check_argv=check_memlab_argv)
    assert len(spec.jobs) == 8 and len(spec.levels()) == 2


def test_the_mitigations_acceptance_spec_is_valid():
    from memlab.sweep.job_spec import check_memlab_argv

    spec = parse_job_spec(tomllib.loads((Path(__file__).parents[2] / "settings" / "mitigations_8x8.toml").read_text()),
                          RUNS, check_argv=check_memlab_argv)
    score = [j for j in spec.jobs if j.name == "score-raster-s1"][0]
    assert len(spec.levels()) == 4 and "unlearn-npo-raster-s1" in score.needs and "base-raster-s1" in score.needs


# --- running ------------------------------------------------------------------------------------------

LAUNCHED: list[list[str]] = []


def fake_launch(argv, log, env):
    """Stands in for `python -m memlab`: a job named 'bad*' fails with memlab's one-line error; any other
    writes its run's metrics.json (a job with --out) and succeeds."""
    LAUNCHED.append(argv)
    log.parent.mkdir(parents=True, exist_ok=True)
    if any("bad" in a for a in argv):
        log.write_text("progress...\nmemlab: error: --lr must be > 0, got -1\n")
        return 2
    if "--out" in argv:
        out = Path(argv[argv.index("--out") + 1])
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text("{}")
    log.write_text("done\n")
    return 0


JOBS = [{"name": "a", "command": "iar train"},
        {"name": "bad", "command": "iar train", "args": {"tag": "bad"}},
        {"name": "uses-a", "command": "iar localize", "out": False, "inputs": ["{run:a}"]},
        {"name": "uses-bad", "command": "iar train", "args": {"prune_from": "{run:bad}"}}]


def test_waves_failures_blocked_dependents_and_resume(tmp_path):
    out = tmp_path / "jobs"
    spec = parse_job_spec({"name": "t", "job": JOBS}, out.resolve() / "runs", check_argv=lambda j: None)
    LAUNCHED.clear()
    table = run_jobs(spec, out, workers=1, progress=False, launch=fake_launch).set_index("job")
    assert dict(table["status"]) == {"a": "ok", "bad": "failed", "uses-a": "ok", "uses-bad": "failed"}
    assert table.loc["bad", "error"] == "memlab: error: --lr must be > 0, got -1"
    assert table.loc["uses-bad", "error"] == "needs bad, which failed"
    assert len(LAUNCHED) == 3  # uses-bad never ran
    assert LAUNCHED[2] == ["iar", "localize", str(out.resolve() / "runs" / "a")]
    assert json.loads((out / "metrics.json").read_text()) == {"jobs": 4, "failed": 2}

    LAUNCHED.clear()
    run_jobs(spec, out, workers=1, progress=False, launch=fake_launch)
    assert LAUNCHED == []  # finished and failed jobs are kept as they are

    # a killed sweep: job a's row is gone and its run is half-written -> continued with --resume
    (out / "rows" / "a.parquet").unlink()
    (out / "runs" / "a" / "metrics.json").unlink()
    (out / "runs" / "a" / "config.json").write_text("{}")
    run_jobs(spec, out, workers=1, progress=False, launch=fake_launch)
    assert LAUNCHED == [["iar", "train", "--out", str(out.resolve() / "runs" / "a"), "--resume"]]

    LAUNCHED.clear()
    table = run_jobs(spec, out, workers=1, progress=False, launch=fake_launch, retry_failed=True)
    assert [a[-1] for a in LAUNCHED] == [str(out.resolve() / "runs" / "bad")]  # bad again; uses-bad still blocked
    assert dict(table.set_index("job")["status"])["uses-bad"] == "failed"


def test_a_different_spec_in_the_same_directory_is_refused(tmp_path):
    out = tmp_path / "jobs"
    spec = parse_job_spec({"name": "t", "job": JOBS[:1]}, out.resolve() / "runs", check_argv=lambda j: None)
    run_jobs(spec, out, workers=1, progress=False, launch=fake_launch)
    other = parse_job_spec({"name": "t", "job": JOBS[:2]}, out.resolve() / "runs", check_argv=lambda j: None)
    with pytest.raises(UsageError, match="holds a different sweep"):
        run_jobs(other, out, workers=1, progress=False, launch=fake_launch)


TINY = {"n_train": 8, "n_heldout": 4, "epochs": 2, "tokenizer_epochs": 1, "width": 32, "depth": 1, "heads": 2,
        "codebook_size": 16, "tokenizer_channels": [8, 16, 16], "latent_channels": 4, "batch_size": 4}


def test_a_real_failing_job_is_recorded_with_memlabs_one_line_error(tmp_path):
    # the real launcher (python -m memlab) on a command line that parses but fails validation: fast, no torch
    out = tmp_path / "jobs"
    spec = parse_job_spec({"name": "t", "job": [{"name": "a", "command": "iar train", "args": {"epochs": 0}}]},
                          out.resolve() / "runs")
    row = run_jobs(spec, out, workers=1, progress=False).iloc[0]
    assert (row["status"], row["returncode"]) == ("failed", 2)
    assert row["error"] == "memlab: error: --epochs must be an integer >= 1, got 0"
    assert "--epochs must be" in (out / "logs" / "a.log").read_text()


@pytest.mark.slow  # ~20 s idle, ~70 s on a loaded machine: a tiny training and UnitMem in subprocesses
def test_a_real_job_sweep_trains_and_localizes_and_resumes_from_its_own_spec(tmp_path, capsys):
    args = ", ".join(f"{k} = {json.dumps(v)}" for k, v in TINY.items())
    spec = tmp_path / "jobs.toml"
    spec.write_text(f'name = "real"\n[defaults."iar train"]\nthreads = 1\n'
                    f'[[job]]\nname = "base"\ncommand = "iar train"\nargs = {{ arch = "raster", {args} }}\n'
                    f'[[job]]\nname = "loc"\ncommand = "iar localize"\nout = false\ninputs = ["{{run:base}}"]\n'
                    f'args = {{ n_aug = 2 }}\n')
    out = tmp_path / "out"
    assert main(["sweep", "run", str(spec), "--out", str(out), "--workers", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [(r["job"], r["status"]) for r in result["rows"]] == [("base", "ok"), ("loc", "ok")]
    assert (out / "runs" / "base" / "metrics.json").is_file()
    assert (out / "runs" / "base" / "localize" / "metrics.json").is_file()
    assert main(["sweep", "run", "--resume", "--out", str(out), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["failed"] == 0 and [r["wall_s"] for r in again["rows"]] == [r["wall_s"] for r in result["rows"]]


def test_only_runs_the_matching_jobs_and_what_they_need_and_the_rest_later(tmp_path):
    out = tmp_path / "jobs"
    spec = parse_job_spec({"name": "t", "job": JOBS}, out.resolve() / "runs", check_argv=lambda j: None)
    LAUNCHED.clear()
    table = run_jobs(spec, out, workers=1, progress=False, launch=fake_launch, only=("uses-a",))
    assert sorted(table["job"]) == ["a", "uses-a"] and len(LAUNCHED) == 2
    assert not (out / "metrics.json").exists()  # not finished: two jobs of the spec have not run
    with pytest.raises(UsageError, match="--only nothing-\\* matches no job"):
        run_jobs(spec, out, workers=1, progress=False, launch=fake_launch, only=("nothing-*",))
    LAUNCHED.clear()
    table = run_jobs(spec, out, workers=1, progress=False, launch=fake_launch)
    assert len(table) == 4 and len(LAUNCHED) == 1 and (out / "metrics.json").is_file()  # bad ran; uses-bad blocked
