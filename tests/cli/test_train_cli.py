"""`memlab train` from the command line: bad input is one line and exit 2 with nothing written; a tiny
run writes its directory and --json prints metrics.json."""

import json
import subprocess
import sys

import numpy as np
import pytest

from memlab.cli import main


@pytest.fixture(scope="module", autouse=True)
def _compilation_cache():
    from memlab.diffusion.compile_cache import enable_compilation_cache

    enable_compilation_cache()

# the shapes of tests/diffusion/test_training.py's small generalizer: its compiled programs are reused
SMALL = ["--dim", "10", "--components", "2", "--n-train", "50", "--n-test", "200", "--size", "2", "--steps", "600",
         "--lr", "0.01", "--draws", "8", "--samples", "128", "--checkpoints", "5", "--quiet"]


@pytest.mark.parametrize("argv,needle", [
    (["--steps", "-1"], "steps"),
    (["--model", "cnn"], "--model"),
    (["--size", "0"], "size"),
    (["--lr", "-0.1"], "--lr"),
    (["--warmup-frac", "1.5"], "--warmup-frac"),
    (["--batch", "many"], "--batch"),
    (["--batch", "500"], "batch must be <= n_train"),
    (["--seeds", "1,x"], "--seeds"),
    (["--seeds", "2,2"], "distinct"),
    (["--weighting", "snr"], "--weighting"),
    (["--threshold", "0"], "threshold"),
    (["--components", "500"], "--components"),
    (["--resume"], "--resume needs --out"),
    (["--n-train", "1", "--components", "1"], "n_train must be >= 2"),
])
def test_bad_options_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, argv, needle):
    out = tmp_path / "run"
    args = ["train", *argv] if "--resume" in argv else ["train", *argv, "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err
    assert not out.exists()


def test_bad_config_file_and_nonempty_out(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[train]\nsize = 3\nbogus = 1\n")
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "a")]) == 2
    assert "unknown key 'bogus'" in capsys.readouterr().err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    assert main(["train", "--out", str(busy)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]


def test_small_run_writes_its_directory_and_json(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *SMALL, "--out", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    metrics = json.loads(captured.out)
    assert metrics["status"] == "ok" and metrics["memorization_ratio"] <= 0.1
    assert "memorization ratio" in captured.err  # the human table goes to stderr
    assert json.loads((out / "metrics.json").read_text())["per_t"] == metrics["per_t"]
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["size"] == 2 and config["optim"]["steps"] == 600 and config["data"]["n_train"] == 50
    assert np.load(out / "samples.npy", allow_pickle=False).shape == (1, 128, 10)
    assert (out / "ckpt").is_dir() and (out / "curve.png").is_file()
    # --resume on a finished run returns its numbers; a changed option is refused
    assert main(["train", *SMALL, "--out", str(out), "--resume", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["per_t"] == metrics["per_t"]
    assert main(["train", *SMALL, "--size", "3", "--out", str(out), "--resume"]) == 2
    assert "--size (run: 2, given: 3)" in capsys.readouterr().err


def test_config_file_sets_fields_and_options_override(tmp_path):
    from memlab.commands.train import configs_from_args
    from memlab.cli import build_parser

    cfg = tmp_path / "c.toml"
    cfg.write_text('[train]\nsize = 3\nsteps = 50\nseeds = [4, 5]\nweighting = "x0-uniform"\n')
    args = build_parser().parse_args(["train", "--config", str(cfg), "--steps", "70", "--batch", "full"])
    _, tc, _, _ = configs_from_args(args)
    assert (tc.model.size, tc.optim.steps, tc.optim.seeds, tc.optim.weighting, tc.optim.batch) == (3, 70, (4, 5), "x0-uniform", None)


def test_command_definition_imports_no_framework():
    code = "import sys, memlab.cli as c; c.build_parser(); assert 'jax' not in sys.modules and 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
