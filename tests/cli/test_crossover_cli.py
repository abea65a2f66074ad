import json
import subprocess
import sys

import numpy as np
import pytest

from memlab.cli import main

FAST = ["--dim", "6", "--n-train", "24", "--draws", "4", "--repeats", "2", "--grid", "6", "--bootstrap", "50"]


def test_predict_json_and_plot(tmp_path, capsys):
    png = tmp_path / "figs" / "cross.png"
    assert main(["crossover", "predict", *FAST, "--json", "--plot", str(png), "--out", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr()
    r = json.loads(out.out)
    for key in ("config", "m_star", "m_star_over_n", "interval", "weighting", "per_t", "curve", "approximations"):
        assert key in r
    assert r["config"]["data"]["n_train"] == 24 and r["weighting"] == "x0-uniform"
    assert {"m", "loss_pmem", "loss_pmem_lo", "loss_pmem_hi"} <= set(r["curve"][0])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "r.json").read_text())["m_star"] == r["m_star"]
    assert "M*/N" in out.err  # the human table goes to stderr


def test_templates_from_user_file(tmp_path, capsys):
    np.save(tmp_path / "tpl.npy", np.random.default_rng(0).random((3, 6, 6)))
    args = ["crossover", "predict", "--data", "templates", "--template-source", str(tmp_path / "tpl.npy"),
            "--components", "3", "--n-train", "20", "--draws", "4", "--repeats", "2", "--grid", "5",
            "--bootstrap", "20", "--json"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["dim"] == 3 * 6 * 6


@pytest.mark.parametrize("args, needle", [
    (["--dim", "-3"], "--dim"),
    (["--n-train", "0"], "--n-train"),
    (["--components", "200"], "--components"),
    (["--data", "mnist"], "--data"),
    (["--weighting", "huber"], "weighting"),
    (["--grid", "101"], "--grid"),
    (["--data", "templates", "--template-source", "/no/such/file.npy"], "does not exist"),
    (["--data", "templates", "--template-source", "BAD_SHAPE"], "shape"),
])
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, args, needle):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((4, 5)))
    args = [str(bad) if a == "BAD_SHAPE" else a for a in args]
    out_dir = tmp_path / "out"
    code = main(["crossover", "predict", *args, "--plot", str(out_dir / "p.png"), "--out", str(out_dir / "r.json")])
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out_dir.exists()


def test_help_imports_no_framework():
    code = ("import sys; from memlab.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print([m for m in ('jax', 'torch', 'flax', 'diffusers') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_console_script_exit_status(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "memlab", "crossover", "predict", "--draws", "-1"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and proc.stdout == ""


def test_x64_runs_in_float64_and_agrees_with_float32(tmp_path, capsys):
    """--x64 computes the prediction in float64 and leaves the process in float32 afterwards (checked in a
    child process). Its draws differ from float32's (64-bit normals), so the two predictions must agree
    within their intervals, not exactly."""
    code = ("import json, sys, jax; from memlab.cli import main; "
            f"rc = main(['crossover', 'predict', *{FAST!r}, '--x64', '--out', sys.argv[1]]); "
            "print(json.dumps({'rc': rc, 'x64': bool(jax.config.jax_enable_x64)}))")
    out64 = tmp_path / "x64.json"
    child = subprocess.run([sys.executable, "-c", code, str(out64)], capture_output=True, text=True, timeout=300)
    assert json.loads(child.stdout.strip().splitlines()[-1]) == {"rc": 0, "x64": False}
    r64 = json.loads(out64.read_text())
    assert main(["crossover", "predict", *FAST, "--json"]) == 0
    r32 = json.loads(capsys.readouterr().out)
    assert r64["config"]["crossover"]["x64"] is True and r32["config"]["crossover"]["x64"] is False
    assert r64["per_t"] != r32["per_t"]  # really a different computation
    lo64, hi64 = r64["interval"]
    lo32, hi32 = r32["interval"]
    assert max(lo64, lo32) <= min(hi64, hi32)  # the two intervals overlap
    assert 0 < r64["m_star_over_n"] <= 1
