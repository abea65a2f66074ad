"""Training end to end on tiny runs: memorization of 8 images, greedy reproduction, exact resume."""

import json

import pytest
import torch

from memlab.iar import checkpoint
from memlab.iar import train as train_mod
from memlab.iar.config import IARTrainConfig, ImageDataConfig, RunConfig
from memlab.iar.load import load_run, load_run_data
from memlab.iar.train import train_run

torch.set_num_threads(1)


def tiny(arch: str, epochs: int, tokenizer_epochs: int = 4, n_train: int = 8) -> RunConfig:
    return RunConfig(ImageDataConfig(n_train=n_train, n_heldout=4),
                     IARTrainConfig(arch=arch, epochs=epochs, tokenizer_epochs=tokenizer_epochs, batch_size=4,
                                    lr=1e-2, width=32, depth=2, heads=2, mlp_ratio=4, codebook_size=32,
                                    latent_channels=8, tokenizer_channels=(8, 16, 16), scales=(1, 2, 4)))


# Next-scale: the 1x1 and 2x2 maps of a few images are shared by images of the same class (the 1x1 map is one
# code for all 8 here), so those positions cannot all be right; the 4x4 map (16 of 21 tokens) can.
@pytest.mark.parametrize("arch,prefix,min_acc", [("raster", 2, 0.95), ("next-scale", 2, 0.9)])
def test_tiny_model_memorizes_8_images_and_greedy_reproduces_them(arch, prefix, min_acc, tmp_path):
    m = train_run(tiny(arch, epochs=60), tmp_path / "run", progress=False, figures=False)
    rows = m["model"]
    assert len(rows) == 60 and rows[-1]["train_acc"] >= min_acc, rows[-1]
    assert rows[-1]["train_nll"] < 0.25 * rows[0]["train_nll"]
    model = load_run(tmp_path / "run")
    train_x, train_y, heldout_x, heldout_y, ids = load_run_data(tmp_path / "run")
    assert train_x.shape == (8, 3, 16, 16) and len(ids) == 8 and heldout_x.shape[0] == 4
    tokens = model.tokenize(train_x)
    with torch.no_grad():
        nll, acc = model.token_nll(tokens, train_y)
    assert abs(acc.mean().item() - rows[-1]["train_acc"]) < 1e-6  # the saved model is the one measured
    out = model.continue_greedy(tokens, train_y, prefix)
    reproduced = (out == tokens).all(1).float().mean().item()
    assert reproduced >= 7 / 8, (out != tokens).sum(1)
    assert model.decode(out).shape == train_x.shape


def test_resume_gives_the_same_final_numbers(tmp_path, monkeypatch):
    cfg = tiny("next-scale", epochs=6, tokenizer_epochs=3)
    full = train_run(cfg, tmp_path / "a", progress=False, figures=False)

    real_save = checkpoint.save_stage
    calls = {"n": 0}

    def crash_after_4_epochs(stage_dir, epoch, *a, **k):  # 3 tokenizer epochs + 1 model epoch, then "kill"
        real_save(stage_dir, epoch, *a, **k)
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_mod, "save_stage", crash_after_4_epochs)
    with pytest.raises(KeyboardInterrupt):
        train_run(cfg, tmp_path / "b", progress=False, figures=False)
    monkeypatch.setattr(train_mod, "save_stage", real_save)
    assert json.loads((tmp_path / "b" / "state" / "model" / "latest.json").read_text())["epoch"] == 1
    resumed = train_run(cfg, tmp_path / "b", resume=True, progress=False, figures=False)
    assert resumed["model"] == full["model"] and resumed["tokenizer"] == full["tokenizer"]
    a, b = load_run(tmp_path / "a"), load_run(tmp_path / "b")
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(pa, pb)
