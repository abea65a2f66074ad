"""A damaged orbax checkpoint (truncated, overwritten or deleted files) is one UsageError naming DIR/<step>,
with nothing else on stderr (orbax's stranded reads stay quiet) and nothing written; `memlab train --resume`
of such a run exits 2 with that one line."""

import gc
import shutil
import sys
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from memlab.cli import main
from memlab.diffusion.checkpoint import Checkpoints
from memlab.errors import UsageError
from tests.cli.malformed_fixtures import garble, listing, truncate


def _state():
    rng = np.random.default_rng(0)
    return {"params": {"w": jnp.asarray(rng.normal(size=(16, 30)), jnp.float32), "b": jnp.zeros(7)},
            "opt": [jnp.asarray(rng.normal(size=(16, 30)), jnp.float32), jnp.ones(3)],
            "step": jnp.asarray([20], jnp.int32)}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("orbax") / "ckpt"
    ck = Checkpoints(root)
    ck.save(1, _state())
    ck.save(20, _state())
    ck.close()
    return root


def _data_files(step_dir: Path) -> list[Path]:
    """The OCDBT data files (some may be unreferenced leftovers of the per-process database: damage all)."""
    return [p for p in step_dir.rglob("*") if p.is_file() and p.parent.name == "d"]


DAMAGE = {
    "truncated-data": lambda s: [truncate(p) for p in _data_files(s)],
    "garbage-data": lambda s: [garble(p) for p in _data_files(s)],
    "deleted-data": lambda s: [p.unlink() for p in _data_files(s)],
    "truncated-metadata": lambda s: truncate(s / "default" / "_METADATA"),
    "garbage-metadata": lambda s: (s / "default" / "_METADATA").write_bytes(b"\xff\xfe not json"),
    "garbage-manifest": lambda s: (s / "default" / "manifest.ocdbt").write_bytes(b"\x00" * 40),
    "deleted-manifest": lambda s: (s / "default" / "manifest.ocdbt").unlink(),
    "deleted-item": lambda s: shutil.rmtree(s / "default"),
    "empty-files": lambda s: [p.write_bytes(b"") for p in s.rglob("*") if p.is_file()],
}


@pytest.mark.parametrize("how", list(DAMAGE))
def test_damaged_checkpoint_is_one_usage_error_naming_the_step(saved, tmp_path, capfd, caplog, monkeypatch, how):
    root = tmp_path / "ckpt"
    shutil.copytree(saved, root)
    DAMAGE[how](root / "20")
    before = listing(root)
    ck = Checkpoints(root)
    assert ck.latest_step() == 20
    stray = []  # what the interpreter would print as "Exception ignored in ..."
    monkeypatch.setattr(sys, "unraisablehook", stray.append)
    capfd.readouterr()
    with pytest.raises(UsageError) as err:
        ck.restore(20, _state())
    msg = str(err.value)
    assert msg.startswith(f"cannot restore the orbax checkpoint {root.absolute() / '20'}: ") and "\n" not in msg
    assert "tensorstore_spec" not in msg and len(msg) < 600
    gc.collect()  # stranded reads would report their errors now
    time.sleep(0.2)  # and tensorstore's late completions into orbax's closed event loop
    gc.collect()
    assert not stray, [str(r.exc_value)[:100] for r in stray]
    assert not [r for r in caplog.records if r.name == "asyncio"]  # "Task exception was never retrieved"
    errs = capfd.readouterr().err
    assert "Traceback" not in errs and "Exception ignored" not in errs, errs
    assert listing(root) == before
    Checkpoints(root).restore(1, _state())  # the intact older checkpoint still restores


def test_intact_checkpoint_restores_exactly_and_keyboard_interrupt_passes(saved, tmp_path, monkeypatch):
    ck = Checkpoints(saved)
    back = ck.restore(20, _state())
    np.testing.assert_array_equal(back["params"]["w"], _state()["params"]["w"])

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(ck.manager, "restore", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ck.restore(20, _state())


def test_checkpoint_directory_that_is_a_file(tmp_path):
    f = tmp_path / "ckpt"
    f.write_text("not a directory")
    with pytest.raises(UsageError, match="is not a directory"):
        Checkpoints(f)


# --- through the CLI: an interrupted `memlab train` run whose last checkpoint was damaged ---------------

TRAIN = ["train", "--steps", "20", "--checkpoints", "3", "--samples", "16", "--n-train", "20", "--n-test", "50",
         "--dim", "4", "--components", "2", "--size", "4", "--quiet"]


class _Stop(Exception):
    pass


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory):
    """A run stopped right after its last orbax checkpoint (step 20), before metrics.json."""
    out = tmp_path_factory.mktemp("train") / "run"
    save = Checkpoints.save

    def save_then_stop(self, step, state):
        save(self, step, state)
        if step == 20:
            raise _Stop

    mp = pytest.MonkeyPatch()
    mp.setattr(Checkpoints, "save", save_then_stop)
    try:
        with pytest.raises(_Stop):
            main([*TRAIN, "--out", str(out)])
    finally:
        mp.undo()
    assert not (out / "metrics.json").exists()
    return out


def _step_dir(run: Path) -> Path:
    steps = [p.parent for p in run.rglob("_CHECKPOINT_METADATA") if p.parent.name.isdigit()]
    return max(steps, key=lambda p: int(p.name))


@pytest.mark.parametrize("how", ["truncated-data", "garbage-metadata", "deleted-manifest"])
def test_train_resume_of_a_damaged_checkpoint_exits_2_with_one_line(interrupted_run, tmp_path, capsys, how):
    run = tmp_path / "run"
    shutil.copytree(interrupted_run, run)
    step = _step_dir(run)
    DAMAGE[how](step)
    before = listing(run)
    capsys.readouterr()
    assert main([*TRAIN, "--out", str(run), "--resume"]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"cannot restore the orbax checkpoint {step}" in lines[0]
    assert listing(run) == before


def test_train_resume_of_an_intact_interrupted_run_finishes(interrupted_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(interrupted_run, run)
    assert main([*TRAIN, "--out", str(run), "--resume"]) == 0
    assert (run / "metrics.json").is_file()
