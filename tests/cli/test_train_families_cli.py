"""`memlab train` with the denoiser families and the model/optim/eval config split: U-Net and DiT runs end
to end, bad input for every new option is one line and exit 2 with nothing written, and runs and TOML
files in the layout from before the split (one flat [train] table) still load and resume."""

import json
import shutil

import pytest

from memlab.cli import main


@pytest.fixture(scope="module", autouse=True)
def _compilation_cache():
    from memlab.diffusion.compile_cache import enable_compilation_cache

    enable_compilation_cache()


IMAGES = ["--data", "templates", "--components", "2", "--n-train", "12", "--n-test", "20", "--height", "6",
          "--width", "6", "--size", "4", "--depth", "1", "--steps", "20", "--checkpoints", "3", "--samples", "16",
          "--draws", "4", "--quiet"]
# the run of tests/cli/test_resume_from_dir.py, and its config.json as written before the split
SMALL = ["--dim", "4", "--components", "2", "--n-train", "20", "--n-test", "50", "--size", "3", "--steps", "40",
         "--checkpoints", "4", "--samples", "16", "--draws", "4", "--seed", "3", "--quiet"]
LEGACY_TRAIN = {"model": "mixture", "size": 3, "depth": 2, "steps": 40, "lr": 0.01, "warmup_frac": 0.1,
                "final_lr": 1e-06, "clip": 1.0, "draws": 4, "batch": None, "weighting": "eps", "predict": "eps",
                "init": "pmem", "samples": 16, "seeds": 1, "seed_mode": "auto", "n_checkpoints": 4, "sampler": "ddim",
                "grid_points": 26, "threshold": 1 / 3, "eval_draws": 4, "eval_test": 1000, "n_boot": 1000}


def _one_line_exit_2(capsys, argv, needle, out):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err, err
    assert not out.exists()


@pytest.mark.parametrize("argv, needle", [
    (["--model", "cnn"], "--model"),
    (["--model", "dit", "--patch", "0"], "--patch must be an integer >= 1, got 0"),
    (["--model", "dit", "--patch", "x"], "--patch: invalid int value"),
    (["--model", "dit", "--heads", "0"], "--heads must be an integer >= 1, got 0"),
    (["--model", "dit", "--heads", "3"], "--heads must divide size (4), got 3"),
    (["--model", "mlp", "--patch", "3"], "--patch applies to model 'dit' only, got 3 for model 'mlp'"),
    (["--model", "unet", "--heads", "2"], "--heads applies to model 'dit' only"),
    (["--model", "unet", "--data", "gmm"], "model 'unet' needs image-shaped data (dataset 'templates')"),
    (["--model", "dit", "--heads", "2", "--data", "gmm"], "model 'dit' needs image-shaped data"),
    (["--model", "unet", "--depth", "3"], "depth must be <= 2 for 6x6 images"),
    (["--model", "dit", "--heads", "2", "--patch", "7"], "patch must be <= 6 (the smaller image side), got 7"),
])
def test_bad_new_options_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, argv, needle):
    out = tmp_path / "run"
    _one_line_exit_2(capsys, ["train", *IMAGES, *argv, "--out", str(out)], needle, out)


@pytest.mark.parametrize("toml, needle", [
    ("[model]\nfamily = 'dit'\nheads = 0\n", "heads in [model] of"),
    ("[model]\nfamily = 'cnn'\n", "unknown family in [model] of"),
    ("[optim]\nbogus = 1\n", "unknown key 'bogus' in [optim]"),
    ("[train]\nsteps = 5\n[optim]\nsteps = 6\n", "'steps' is given in both [train] and [optim]"),
    ("[train]\npatch = 0\nmodel = 'dit'\n", "patch in [model] of"),
])
def test_bad_config_tables_exit_2_with_one_line(tmp_path, capsys, toml, needle):
    cfg, out = tmp_path / "c.toml", tmp_path / "run"
    cfg.write_text(toml)
    _one_line_exit_2(capsys, ["train", *IMAGES, "--config", str(cfg), "--out", str(out)], needle, out)


@pytest.mark.parametrize("family, extra, params", [  # counts: unet_count(3, 4, 1), dit_count(3, 4, 1, 2, 9)
    ("unet", [], 3995),                                 # of tests/diffusion/test_networks.py
    ("dit", ["--heads", "2", "--patch", "2"], 816),
])
def test_image_families_train_end_to_end(tmp_path, capsys, family, extra, params):
    out = tmp_path / family
    assert main(["train", *IMAGES, "--model", family, *extra, "--out", str(out), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["status"] == "ok" and m["model"] == family and m["param_count"] == params
    assert m["effective_size"] == params / 108 and m["dim"] == 108  # 3 x 6 x 6 pixels
    assert [c["step"] for c in m["checkpoints"]] == [0, 1, 20] and 0.0 <= m["memorization_ratio"] <= 1.0
    assert m["checkpoints"][-1]["train_loss"] < m["checkpoints"][0]["train_loss"]
    config = json.loads((out / "config.json").read_text())
    assert set(config) == {"kind", "data", "model", "optim", "eval"} and config["model"]["family"] == family
    assert config["optim"]["lr"] == 1e-3 and "mixture" not in m["per_seed"][0]


def test_a_run_saved_before_the_split_resumes_and_refuses_other_settings(tmp_path, capsys):
    ref = tmp_path / "ref"
    assert main(["train", *SMALL, "--out", str(ref), "--json"]) == 0
    reference = json.loads(capsys.readouterr().out)
    old = tmp_path / "old"
    shutil.copytree(ref, old)
    config = json.loads((old / "config.json").read_text())
    (old / "config.json").write_text(json.dumps({"kind": "train", "data": config["data"], "train": LEGACY_TRAIN}))
    assert main(["train", "--resume", "--out", str(old), "--json"]) == 0  # finished: its own numbers
    assert json.loads(capsys.readouterr().out)["per_t"] == reference["per_t"]
    (old / "metrics.json").unlink()  # as a kill after the last checkpoint leaves it
    assert main(["train", *SMALL, "--resume", "--out", str(old), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["per_t"] == reference["per_t"] and got["checkpoints"] == reference["checkpoints"]
    assert main(["train", "--resume", "--out", str(old), "--steps", "41"]) == 2
    assert "--steps (run: 40, given: 41)" in capsys.readouterr().err


def test_legacy_train_table_and_part_tables_combine(tmp_path):
    from memlab.cli import build_parser
    from memlab.commands.train import configs_from_args

    cfg = tmp_path / "c.toml"
    cfg.write_text("[train]\nmodel = 'dit'\nsize = 8\nsteps = 50\n[model]\nheads = 2\n[eval]\nsamples = 7\n")
    _, tc, _, _ = configs_from_args(build_parser().parse_args(["train", "--config", str(cfg), "--patch", "2"]))
    assert (tc.model.family, tc.model.size, tc.model.heads, tc.model.patch) == ("dit", 8, 2, 2)
    assert (tc.optim.steps, tc.optim.lr, tc.eval.samples) == (50, 1e-3, 7)
