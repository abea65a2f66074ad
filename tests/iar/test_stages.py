"""Training stages (issue 12): stopping when the targets are memorized, log-spaced checkpoints, and loading a
run at a saved epoch or stage."""

import json

import pytest
import torch

from memlab.cli import main
from memlab.errors import UsageError
from memlab.iar import train as train_mod
from memlab.iar.checkpoint import load_pretrained
from memlab.iar.config import IARTrainConfig, ImageDataConfig, RunConfig
from memlab.iar.load import load_run, run_stage
from memlab.iar.models import MODEL_CLASSES
from memlab.iar.stages import checkpoint_epochs, first_reaching, resolve_stage
from memlab.iar.train import target_rows, train_run
from tests.iar.tiny_models import train_until_killed

torch.set_num_threads(1)


def tiny(epochs: int, **train) -> RunConfig:
    return RunConfig(ImageDataConfig(n_train=8, n_heldout=4, duplicates=3, n_duplicated=2),
                     IARTrainConfig(arch="raster", epochs=epochs, tokenizer_epochs=1, batch_size=4, width=32,
                                    depth=1, heads=2, codebook_size=16, latent_channels=4,
                                    tokenizer_channels=(8, 8, 8), **train))


def test_checkpoint_epochs_are_log_spaced_and_first_reaching_is_the_first():
    assert checkpoint_epochs(60) == [1, 2, 3, 4, 6, 8, 11, 16, 23, 32, 45]
    assert checkpoint_epochs(1) == [] and checkpoint_epochs(3) == [1, 2]
    assert first_reaching([0.2, 0.99, 0.5, 1.0], 0.99) == 2
    assert first_reaching([0.2, 0.98], 0.99) is None


def test_target_rows_are_the_planted_duplicates_or_given_ids():
    ids = ["a", "b", "b#copy1", "c", "b#copy2"]
    rows, source = target_rows(ids, ())
    assert rows.tolist() == [1] and source == "planted duplicates"
    rows, source = target_rows(ids, ("c", "a"))
    assert rows.tolist() == [3, 0] and source == "given ids"
    assert target_rows(["a", "b"], ())[0].tolist() == [0, 1]
    with pytest.raises(UsageError, match="image 'z' is not in the training set"):
        target_rows(ids, ("z",))


ACCS = [0.1, 0.5, 0.97, 0.995, 0.2, 1.0, 1.0, 1.0]  # a constructed accuracy history: 0.99 first reached at 4


@pytest.fixture
def constructed_accuracy(monkeypatch):
    """Every epoch's target accuracy is ACCS[epoch - 1], whatever the model learns."""
    real_eval, real_gen, seen = train_mod.eval_model, train_mod.epoch_generator, {}

    def gen(seed, stage, epoch):
        seen[stage] = epoch
        return real_gen(seed, stage, epoch)

    def evaluate(*a, **k):
        return {**real_eval(*a, **k), "target_acc": ACCS[seen["model"]]}

    monkeypatch.setattr(train_mod, "epoch_generator", gen)
    monkeypatch.setattr(train_mod, "eval_model", evaluate)


def test_stops_at_the_first_epoch_that_reaches_the_accuracy_and_a_resumed_run_stops_there_too(
        tmp_path, monkeypatch, constructed_accuracy):
    cfg = tiny(8, stop_when_memorized=0.99)
    full = train_run(cfg, tmp_path / "a", progress=False, figures=False)
    assert [r["epoch"] for r in full["model"]] == [1, 2, 3, 4]
    assert full["stopped_epoch"] == 4 and full["memorized_epoch"] == 4 and full["checkpoints"] == [1, 2, 3]

    train_until_killed(cfg, tmp_path / "b", monkeypatch, 3)  # 1 tokenizer epoch + 2 model epochs
    resumed = train_run(cfg, tmp_path / "b", resume=True, progress=False, figures=False)
    assert resumed["model"] == full["model"] and resumed["stopped_epoch"] == 4
    # without the flag the run trains on, and the first epoch at 0.99 is kept as the memorized stage
    late = train_run(tiny(8), tmp_path / "c", progress=False, figures=False)
    assert len(late["model"]) == 8 and late["stopped_epoch"] is None and late["memorized_epoch"] == 4
    assert late["checkpoints"] == [1, 2, 3, 4, 6]
    assert resolve_stage(tmp_path / "c", 16, stage="memorized").epoch == 4


def test_checkpoint_weights_are_the_epochs_weights_bit_for_bit(tmp_path, monkeypatch):
    cfg, run = tiny(6), tmp_path / "run"
    train_until_killed(cfg, run, monkeypatch, 5)  # 1 tokenizer epoch + 4 model epochs
    at4 = load_pretrained(MODEL_CLASSES["raster"], run / "state" / "model" / "epoch-0004" / "weights").state_dict()
    train_run(cfg, run, resume=True, progress=False, figures=False)  # epochs 5, 6; checkpoint 4 untouched
    loaded = load_run(run, run_stage(run, checkpoint=4)).state_dict()
    assert at4.keys() == loaded.keys() and all(torch.equal(at4[k], loaded[k]) for k in at4)
    final = load_run(run).state_dict()
    assert not all(torch.equal(final[k], loaded[k]) for k in final)
    stage = run_stage(run, checkpoint=6)  # the last epoch is the final weights in RUN/model
    assert stage.name == "final" and stage.work_dir == run and stage.log_v == pytest.approx(2.7725887)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["checkpoints"] == [1, 2, 3, 4]


def test_an_unknown_epoch_or_stage_exits_2_with_one_line_listing_the_saved_ones(tmp_path, capsys):
    run = tmp_path / "run"
    train_run(tiny(3), run, progress=False, figures=False)
    capsys.readouterr()
    for argv, needle in ((["--checkpoint", "7"], "no checkpoint of epoch 7 in"),
                         (["--stage", "late"], "unknown --stage 'late'; allowed: memorized, final"),
                         (["--checkpoint", "1", "--stage", "final"], "not both")):
        code = main(["iar", "extract", str(run), *argv])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and needle in err, err
    main(["iar", "extract", str(run), "--checkpoint", "7"])
    assert "saved: 1, 2, 3" in capsys.readouterr().err
    assert not (run / "extract").exists() and not (run / "checkpoints" / "epoch-0007").exists()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["memorized_epoch"] is None  # 3 epochs are too few
    assert main(["iar", "extract", str(run), "--stage", "memorized"]) == 2
    assert "has no memorized stage" in capsys.readouterr().err
    assert main(["iar", "extract", str(run), "--checkpoint", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_images"] == 8  # the unique training images
    assert (run / "checkpoints" / "epoch-0002" / "extract" / "metrics.json").is_file()


def test_every_stage_shares_the_runs_unitmem_token_cache(tmp_path, capsys):
    run = tmp_path / "run"
    train_run(tiny(3), run, progress=False, figures=False)
    assert main(["iar", "localize", str(run), "--checkpoint", "1", "--n-aug", "2"]) == 0
    files = sorted((run / "cache").glob("unitmem_tokens_*.npz"))
    assert len(files) == 1 and (run / "checkpoints" / "epoch-0001" / "localize" / "unitmem.parquet").is_file()
    written = files[0].stat().st_mtime_ns
    assert main(["iar", "localize", str(run), "--n-aug", "2"]) == 0  # the final weights, the same tokenizer: a hit
    assert sorted((run / "cache").glob("*.npz")) == files and files[0].stat().st_mtime_ns == written
