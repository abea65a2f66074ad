"""`--resume --out DIR` with no other flags reads the config saved in DIR and ends with the numbers of an
uninterrupted run: `memlab train`, `memlab sweep run` and `memlab iar train`."""

import json

import pandas as pd
import pytest
import torch

from memlab.cli import main
from memlab.io import read_json

torch.set_num_threads(1)

TRAIN = ["--dim", "4", "--components", "2", "--n-train", "20", "--n-test", "50", "--size", "3", "--steps", "40",
         "--checkpoints", "4", "--samples", "16", "--draws", "4", "--seed", "3", "--quiet"]
IAR = ["--arch", "raster", "--n-train", "8", "--n-heldout", "4", "--epochs", "3", "--tokenizer-epochs", "2",
       "--width", "32", "--depth", "1", "--heads", "2", "--codebook-size", "16", "--tokenizer-channels", "8,16,16",
       "--latent-channels", "4", "--batch-size", "4", "--seed", "5"]
SWEEP = """
name = "resume"
[data]
dim = 3
components = 2
n_train = 12
[model]
sizes = [0.5, 1.0]
[seeds]
count = 1
[train]
steps = 10
n_checkpoints = 3
eval_test = 20
[sampling]
samples = 16
[predict]
repeats = 2
draws = 4
grid = 6
"""


class _Stop(Exception):
    pass


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def _stable(m: dict) -> dict:
    return {k: v for k, v in m.items() if k != "timing"}


def test_train_resume_with_only_out_matches_an_uninterrupted_run(tmp_path, capsys, monkeypatch):
    import memlab.diffusion.checkpoint as ckpt

    assert main(["train", *TRAIN, "--out", str(tmp_path / "ref"), "--json"]) == 0
    reference = _json(capsys)
    real_save, saves = ckpt.Checkpoints.save, []

    def save_then_stop(self, step, state):
        real_save(self, step, state)
        saves.append(step)
        if len(saves) == 2:
            raise _Stop

    monkeypatch.setattr(ckpt.Checkpoints, "save", save_then_stop)
    out = tmp_path / "run"
    with pytest.raises(_Stop):
        main(["train", *TRAIN, "--out", str(out)])
    monkeypatch.undo()
    assert not (out / "metrics.json").exists() and (out / "state" / "progress.json").is_file()
    assert main(["train", "--resume", "--out", str(out), "--json"]) == 0
    resumed = _json(capsys)
    assert _stable(resumed) == _stable(reference) and resumed["memorization_ratio"] is not None
    # a flag given again that differs from the saved config is refused, naming it; an equal one is fine
    assert main(["train", "--resume", "--out", str(out), "--steps", "41"]) == 2
    assert "--steps (run: 40, given: 41)" in capsys.readouterr().err
    assert main(["train", "--resume", "--out", str(out), "--steps", "40", "--json"]) == 0
    assert _stable(_json(capsys)) == _stable(reference)


def test_iar_train_resume_with_only_out_matches_an_uninterrupted_run(tmp_path, capsys, monkeypatch):
    import memlab.iar.train as iar_train

    assert main(["iar", "train", *IAR, "--out", str(tmp_path / "ref"), "--json"]) == 0
    reference = _json(capsys)["final"]
    real_save, calls = iar_train.save_stage, []

    def save_then_stop(*args, **kwargs):
        real_save(*args, **kwargs)
        calls.append(1)
        if len(calls) == 3:  # 2 tokenizer epochs, then 1 of the 3 model epochs
            raise _Stop

    monkeypatch.setattr(iar_train, "save_stage", save_then_stop)
    out = tmp_path / "run"
    with pytest.raises(_Stop):
        main(["iar", "train", *IAR, "--out", str(out)])
    monkeypatch.undo()
    assert not (out / "metrics.json").exists()
    assert len(read_json(out / "state" / "history.json")["model"]) == 1
    assert main(["iar", "train", "--resume", "--out", str(out), "--json"]) == 0
    got = _json(capsys)
    assert got["final"] == reference and got["config"]["train"]["seed"] == 5
    assert main(["iar", "train", "--resume", "--out", str(out), "--width", "64"]) == 2
    assert "--width (run: 32, given: 64)" in capsys.readouterr().err


def test_sweep_resume_with_only_out_matches_an_uninterrupted_run(tmp_path, capsys, monkeypatch):
    from memlab.sweep.store import SweepStore

    spec = tmp_path / "s.toml"
    spec.write_text(SWEEP)
    assert main(["sweep", "run", str(spec), "--out", str(tmp_path / "ref"), "--workers", "1"]) == 0
    reference = pd.read_parquet(tmp_path / "ref" / "results.parquet")
    real_write, writes = SweepStore.write_cell, []

    def write_then_stop(self, cell_id, rows):
        real_write(self, cell_id, rows)
        writes.append(cell_id)
        raise KeyboardInterrupt  # Ctrl-C after the first finished cell

    monkeypatch.setattr(SweepStore, "write_cell", write_then_stop)
    out = tmp_path / "run"
    assert main(["sweep", "run", str(spec), "--out", str(out), "--workers", "1"]) == 130
    monkeypatch.undo()
    assert len(writes) == 1 and not (out / "metrics.json").exists()
    capsys.readouterr()
    assert main(["sweep", "run", "--resume", "--out", str(out)]) == 0  # one cell left: runs in-process
    resumed = pd.read_parquet(out / "results.parquet")
    cols = [c for c in reference.columns if c != "wall_s"]
    pd.testing.assert_frame_equal(resumed[cols], reference[cols])
    assert read_json(out / "metrics.json")["rows"] == len(reference) == 2
    assert read_json(out / "config.json")["kind"] == "sweep"


@pytest.mark.parametrize("argv,needle", [
    (["train", "--resume", "--out", "{tmp}/missing"], "does not exist, so there is no run to continue"),
    (["iar", "train", "--resume", "--out", "{tmp}/missing"], "does not exist, so there is no run to continue"),
    (["sweep", "run", "--resume", "--out", "{tmp}/missing"], "does not exist, so there is no run to continue"),
    (["train", "--resume", "--out", "{tmp}/empty"], "is empty, so there is no run to continue"),
    (["sweep", "run", "--out", "{tmp}/empty"], "needs a SPEC file, or --resume"),
])
def test_resume_of_a_missing_or_empty_directory_is_an_error(tmp_path, capsys, argv, needle):
    (tmp_path / "empty").mkdir()
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"] and not any((tmp_path / "empty").iterdir())


def test_a_run_saved_before_a_config_field_existed_resumes_with_its_default(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["iar", "train", *IAR, "--out", str(out), "--json"]) == 0
    final = _json(capsys)["final"]
    cfg = read_json(out / "config.json")
    del cfg["train"]["tokenizer_norm"]  # as written before the field was added
    (out / "config.json").write_text(json.dumps(cfg))
    assert main(["iar", "train", "--resume", "--out", str(out), "--json"]) == 0
    assert _json(capsys)["final"] == final
