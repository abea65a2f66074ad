"""`memlab iar train` end to end on a tiny run, and its bad-input errors (one line, exit 2, nothing written)."""

import json

import numpy as np
import pytest
import torch

from memlab.cli import main
from memlab.errors import UsageError
from memlab.iar.load import load_run

torch.set_num_threads(1)

TINY = ["--n-train", "8", "--n-heldout", "4", "--epochs", "2", "--tokenizer-epochs", "1", "--width", "32",
        "--depth", "1", "--heads", "2", "--codebook-size", "16", "--tokenizer-channels", "8,16,16",
        "--latent-channels", "4", "--batch-size", "4"]


@pytest.mark.parametrize("arch", ["raster", "masked", "next-scale"])
def test_train_writes_a_loadable_run_and_json(arch, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["iar", "train", "--arch", arch, *TINY, "--out", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    res = json.loads(captured.out)
    assert res["config"]["train"]["arch"] == arch and "nll" in captured.err
    for f in ("config.json", "metrics.json", "tokenizer/config.json", "model/diffusion_pytorch_model.safetensors"):
        assert (out / f).is_file(), f
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["epoch"] for r in metrics["model"]] == [1, 2] and len(metrics["tokenizer"]) == 1
    assert res["final"]["model"] == metrics["model"][-1]
    assert (out / "curves.png").stat().st_size > 1000 and (out / "samples.png").stat().st_size > 1000
    assert np.isfinite(res["final"]["model"]["heldout_nll"])
    model = load_run(out)
    assert model.arch == arch and not model.training
    # an existing run is never overwritten; --resume on a finished run trains nothing and reports the same
    assert main(["iar", "train", "--arch", arch, *TINY, "--out", str(out)]) == 2
    assert "already holds a `memlab iar train` run" in capsys.readouterr().err
    assert main(["iar", "train", "--arch", arch, *TINY, "--out", str(out), "--resume", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["final"] == res["final"]


def _png(path, h, w):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(path)


def _bad_cases(tmp_path):
    (tmp_path / "empty").mkdir()
    _png(tmp_path / "mixed" / "a.png", 16, 16)
    _png(tmp_path / "mixed" / "b.png", 24, 16)
    return [
        (["--arch", "diffusion"], "unknown --arch 'diffusion'; allowed: next-scale, raster, masked"),
        (["--data", "cifar"], "unknown --data 'cifar'; allowed: shapes"),
        (["--data", f"folder:{tmp_path / 'empty'}"], "holds no images"),
        (["--data", f"folder:{tmp_path / 'mixed'}", "--n-train", "1", "--n-heldout", "1"], "mixed sizes"),
        (["--data", f"folder:{tmp_path / 'nowhere'}"], "folder does not exist"),
        (["--scales", "1,2,3"], "must end at the latent grid size 4"),
        (["--epochs", "0"], "--epochs must be an integer >= 1"),
        (["--resume"], "no run to continue"),
    ]


def test_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys):
    for extra, msg in _bad_cases(tmp_path):
        out = tmp_path / "out"
        rc = main(["iar", "train", *TINY, "--out", str(out), *extra])
        err = capsys.readouterr().err
        assert rc == 2, extra
        assert err.count("\n") == 1 and err.startswith("memlab: error:") and msg in err, (extra, err)
        assert "Traceback" not in err and not out.exists(), extra


def test_missing_checkpoint_directory_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="run directory does not exist"):
        load_run(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text('{"data": {}, "train": {}}')
    with pytest.raises(UsageError, match="no trained tokenizer"):
        load_run(tmp_path / "half")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "config.json").write_text('{"data": {"colour": 1}, "train": {}}')
    with pytest.raises(UsageError, match="unknown key 'colour'"):
        load_run(tmp_path / "junk")
