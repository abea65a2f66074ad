"""Damaged IAR state is one UsageError naming the file (issue 10): the per-epoch training state
(safetensors weights and moments, optimizer/scheduler JSON, latest.json), a run's published weights, the
UnitMem running sums, and images of a `folder:` set. Through the CLI: exit 2, one line, nothing written."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers.optimization import get_cosine_schedule_with_warmup

from memlab.cli import main
from memlab.errors import UsageError
from memlab.iar.checkpoint import latest_epoch, load_pretrained, load_stage
from memlab.iar.config import AugmentConfig, ImageDataConfig, UnitMemConfig
from memlab.iar.data import load_images
from memlab.iar.load import load_run, load_run_data
from memlab.iar.models import MODEL_CLASSES
from memlab.iar.tokenizer import ImageTokenizer
from memlab.iar.unitmem import STATE, compute_unitmem
from tests.cli.malformed_fixtures import GARBAGE, garble, listing, truncate

torch.set_num_threads(1)

TINY = ["--arch", "raster", "--n-train", "8", "--n-heldout", "4", "--epochs", "2", "--tokenizer-epochs", "1",
        "--width", "32", "--depth", "1", "--heads", "2", "--codebook-size", "16", "--tokenizer-channels", "8,16,16",
        "--latent-channels", "4", "--batch-size", "4"]
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("iar") / "run"
    assert main(["iar", "train", *TINY, "--out", str(out)]) == 0
    return out


def _copy(run: Path, dst: Path) -> Path:
    shutil.copytree(run, dst)
    return dst


def _one(run: Path, pattern: str) -> Path:
    found = sorted(run.rglob(pattern))
    assert found, pattern
    return found[-1]


def _model_stage(run: Path) -> Path:
    return _one(run, "latest.json").parent.parent / "model"


def _epoch_dir(run: Path) -> Path:
    return max(_model_stage(run).glob("epoch-*"))


# --- the per-epoch training state: load_stage / latest_epoch -----------------------------------------

def _load_stage(stage: Path):
    opt = lambda m: torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.01)
    sched = lambda o: get_cosine_schedule_with_warmup(o, 1, 10)
    return load_stage(stage, MODEL_CLASSES["raster"], opt, sched)


def _tokenizer_epoch(run: Path) -> Path:
    return max((_model_stage(run).parent / "tokenizer").glob("epoch-*"))


STAGE_DAMAGE = {  # name -> (damage(run) -> the file the message must name, words of the message)
    "moments-truncated": (lambda r: truncate(_epoch_dir(r) / "optimizer.safetensors"), "cannot load the optimizer state"),
    "moments-garbage": (lambda r: garble(_epoch_dir(r) / "optimizer.safetensors"), "cannot load the optimizer state"),
    "moments-of-another-model": (
        lambda r: Path(shutil.copy(_tokenizer_epoch(r) / "optimizer.safetensors", _epoch_dir(r) / "optimizer.safetensors")),
        "belongs to another model"),
    "weights-truncated": (lambda r: truncate(_epoch_dir(r) / "weights" / "diffusion_pytorch_model.safetensors"),
                          "cannot load the weights"),
    "weights-of-another-model": (
        lambda r: Path(shutil.copy(_tokenizer_epoch(r) / "weights" / "diffusion_pytorch_model.safetensors",
                                   _epoch_dir(r) / "weights" / "diffusion_pytorch_model.safetensors")),
        "weights of another model"),
    "weights-config-garbage": (lambda r: garble(_epoch_dir(r) / "weights" / "config.json"), "malformed JSON in"),
    "optimizer-json-truncated": (lambda r: truncate(_epoch_dir(r) / "optimizer.json"), "malformed JSON in"),
    "optimizer-json-wrong-shape": (
        lambda r: (_epoch_dir(r) / "optimizer.json").write_text('{"param_groups": 3}') and _epoch_dir(r) / "optimizer.json",
        "damaged optimizer state"),
    "scheduler-json-garbage": (lambda r: garble(_epoch_dir(r) / "scheduler.json"), "malformed JSON in"),
    "scheduler-json-wrong-kind": (
        lambda r: (_epoch_dir(r) / "scheduler.json").write_text('{"last_epoch": "two"}') and _epoch_dir(r) / "scheduler.json",
        "damaged scheduler state"),
    "latest-garbage": (lambda r: garble(_model_stage(r) / "latest.json"), "malformed JSON in"),
    "latest-no-epoch": (lambda r: (_model_stage(r) / "latest.json").write_text('{"step": 2}') and _model_stage(r) / "latest.json",
                        "damaged"),
    "latest-names-a-missing-epoch": (
        lambda r: (_model_stage(r) / "latest.json").write_text('{"epoch": 7}') and _model_stage(r) / "epoch-0007",
        "does not exist"),
}


def test_intact_stage_state_loads(finished_run):
    _, opt, _, epoch = _load_stage(_model_stage(finished_run))
    assert epoch == 2 and latest_epoch(_model_stage(finished_run)) == 2 and len(opt.state) > 0


# --- a run's published weights: load_run -------------------------------------------------------------

RUN_DAMAGE = {
    "model-truncated": (lambda r: truncate(r / "model" / "diffusion_pytorch_model.safetensors"), "cannot load the model"),
    "model-garbage": (lambda r: garble(r / "model" / "diffusion_pytorch_model.safetensors"), "cannot load the model"),
    "tokenizer-truncated": (lambda r: truncate(r / "tokenizer" / "diffusion_pytorch_model.safetensors"),
                            "cannot load the tokenizer"),
    "tokenizer-holds-the-model": (
        lambda r: Path(shutil.copy(r / "model" / "diffusion_pytorch_model.safetensors",
                                   r / "tokenizer" / "diffusion_pytorch_model.safetensors")),
        "weights of another model"),
    "tokenizer-config-truncated": (lambda r: truncate(r / "tokenizer" / "config.json"), "malformed JSON in"),
    "tokenizer-weights-missing": (
        lambda r: (r / "tokenizer" / "diffusion_pytorch_model.safetensors").unlink() or r / "tokenizer",
        "diffusion_pytorch_model.safetensors is missing"),
    "run-config-garbage": (lambda r: garble(r / "config.json"), "malformed JSON in"),
}


LOADERS = {"stage": lambda run: _load_stage(_model_stage(run)), "run": load_run}


@pytest.mark.parametrize("loader,how", [("stage", h) for h in STAGE_DAMAGE] + [("run", h) for h in RUN_DAMAGE])
def test_damaged_state_is_one_error_naming_the_file(finished_run, tmp_path, loader, how):
    run = _copy(finished_run, tmp_path / "run")
    damage, words = {**STAGE_DAMAGE, **RUN_DAMAGE}[how]
    named = damage(run)
    before = listing(run)
    with pytest.raises(UsageError) as err:
        LOADERS[loader](run)
    msg = str(err.value)
    assert "\n" not in msg and words in msg and str(named) in msg, msg
    assert listing(run) == before


def test_load_pretrained_of_an_intact_folder_is_the_saved_model(finished_run):
    tok = load_pretrained(ImageTokenizer, finished_run / "tokenizer", "tokenizer")
    again = ImageTokenizer.from_pretrained(finished_run / "tokenizer", low_cpu_mem_usage=False)
    for (name, a), (_, b) in zip(tok.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name


# --- `memlab iar train --resume` of an interrupted run whose state was damaged ---------------------------

def _interrupted(finished_run: Path, dst: Path) -> Path:
    """The finished run as it was before its last write: no metrics.json (the rundir marks a finished run
    by it), so --resume restores the model stage from its per-epoch state."""
    run = _copy(finished_run, dst)
    (run / "metrics.json").unlink()
    return run


@pytest.mark.parametrize("how", ["moments-truncated", "weights-of-another-model", "scheduler-json-garbage",
                                 "latest-garbage", "tokenizer-truncated", "tokenizer-holds-the-model"])
def test_iar_train_resume_of_damaged_state_exits_2_with_one_line(finished_run, tmp_path, capsys, how):
    run = _interrupted(finished_run, tmp_path / "run")
    named = {**STAGE_DAMAGE, **RUN_DAMAGE}[how][0](run)
    before = listing(run)
    capsys.readouterr()
    assert main(["iar", "train", *TINY, "--out", str(run), "--resume"]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and str(named) in lines[0], err
    assert listing(run) == before


# --- UnitMem running sums ----------------------------------------------------------------------------

def _saved_sums(finished_run: Path, directory: Path):
    """A real state file: a UnitMem pass interrupted after its first batch."""
    model = load_run(finished_run)
    x, y, _, _, ids = load_run_data(finished_run)
    ids = np.asarray(ids)
    cfg = UnitMemConfig(augment=AugmentConfig(n_aug=1), batch_size=4)
    forward, calls = model.teacher_forced_logits, {"n": 0}

    def stop_in_second_batch(tokens, labels):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return forward(tokens, labels)

    model.teacher_forced_logits = stop_in_second_batch
    with pytest.raises(KeyboardInterrupt):
        compute_unitmem(model, x, y, ids, cfg, progress=False, checkpoint=directory)
    model.teacher_forced_logits = forward
    assert (directory / STATE).is_file()
    return model, x, y, ids, cfg


def _edit_npz(path: Path, **changes):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})


def test_damaged_unitmem_state_is_named(finished_run, tmp_path):
    state_dir = tmp_path / "state"
    model, x, y, ids, cfg = _saved_sums(finished_run, state_dir)
    good = (state_dir / STATE).read_bytes()
    progress = json.loads(str(np.load(state_dir / STATE)["progress"]))
    damages = {
        "truncated": lambda p: truncate(p),
        "garbage": lambda p: garble(p),
        "progress-not-json": lambda p: _edit_npz(p, progress=np.array("{not json")),
        "sums-missing": lambda p: _edit_npz(p, sums_0=None),
        "sums-wrong-shape": lambda p: _edit_npz(p, sums_0=np.zeros((3, 1, 2))),
        "next-start-out-of-range": lambda p: _edit_npz(p, progress=np.array(json.dumps({**progress, "next_start": 99}))),
    }
    for name, damage in damages.items():
        (state_dir / STATE).write_bytes(good)
        damage(state_dir / STATE)
        before = listing(state_dir)
        with pytest.raises(UsageError) as err:
            compute_unitmem(model, x, y, ids, cfg, progress=False, checkpoint=state_dir)
        msg = str(err.value)
        assert "\n" not in msg and f"damaged UnitMem state {state_dir / STATE}" in msg, (name, msg)
        assert listing(state_dir) == before, name
    (state_dir / STATE).write_bytes(good)  # intact, it resumes and finishes
    assert len(compute_unitmem(model, x, y, ids, cfg, progress=False, checkpoint=state_dir)) > 0


# --- images of a folder: set -------------------------------------------------------------------------

def _png(path: Path, seed: int = 0) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("how", ["text", "truncated", "empty"])
def test_unreadable_image_in_a_folder_is_named(tmp_path, capsys, how):
    folder = tmp_path / "images"
    for i in range(12):
        _png(folder / f"{i:02d}.png", i)
    bad = folder / "07.png"
    {"text": lambda p: p.write_text("this is text, not a PNG\n"), "truncated": truncate,
     "empty": lambda p: p.write_bytes(b"")}[how](bad)
    with pytest.raises(UsageError) as err:
        load_images(ImageDataConfig(data=f"folder:{folder}", n_train=8, n_heldout=4))
    assert str(err.value).startswith(f"cannot read image {bad}: ") and "\n" not in str(err.value)
    out = tmp_path / "run"
    before = listing(tmp_path)
    assert main(["iar", "train", *TINY, "--data", f"folder:{folder}", "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0]
    assert listing(tmp_path) == before and not out.exists()


def test_iar_localize_with_damaged_running_sums_exits_2_and_writes_nothing(finished_run, tmp_path, capsys):
    run = _copy(finished_run, tmp_path / "run")
    assert main(["iar", "localize", str(run), "--n-aug", "1"]) == 0
    state = _one(run / "localize", "config.json").parent / "state" / STATE  # where an interrupted pass left it
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_bytes(b"PK\x03\x04" + GARBAGE)
    before = listing(run)
    capsys.readouterr()
    assert main(["iar", "localize", str(run), "--n-aug", "1"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"damaged UnitMem state {state}" in err and "Traceback" not in err, err
    assert listing(run) == before
