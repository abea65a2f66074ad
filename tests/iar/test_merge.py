"""Checkpoint merging and the over-memorization monitor (issue 14 item 4): two copies of one checkpoint merge to
that checkpoint bit for bit; the merged run opens like a trained run; the mean of two epochs is their mean;
monitor marks; bad input exits 2 with one line and writes nothing."""

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from memlab.cli import main
from memlab.iar.config import IARTrainConfig, ImageDataConfig, RunConfig
from memlab.iar.load import load_run, run_stage
from memlab.iar.mitigate import merge, monitor
from memlab.iar.train import train_run

torch.set_num_threads(1)
WEIGHTS = "diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("merge") / "run"
    cfg = RunConfig(ImageDataConfig(n_train=8, n_heldout=4, duplicates=3, n_duplicated=2),
                    IARTrainConfig(arch="next-scale", epochs=5, tokenizer_epochs=1, batch_size=4, lr=1e-2, width=32,
                                   depth=1, heads=2, codebook_size=16, latent_channels=4,
                                   tokenizer_channels=(8, 16, 16), scales=(1, 2, 4)))
    train_run(cfg, out, progress=False, figures=False)
    return out


def test_two_copies_of_one_checkpoint_merge_to_it_bit_for_bit(run):
    model = load_run(run, run_stage(run, checkpoint=3))
    sd = model.state_dict()
    avg = merge.average_state_dicts([sd, sd])
    assert list(avg) == list(sd) and all(torch.equal(avg[k], sd[k]) and avg[k].dtype == sd[k].dtype for k in sd)
    # the same through the files: every tensor of the merged run is the checkpoint's, bit for bit
    merge.merge_run(run, [3], run.parent / "one")
    a, b = load_file(str(run / "checkpoints" / "epoch-0003" / "model" / WEIGHTS)), load_file(str(run.parent / "one" / "model" / WEIGHTS))
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_the_merged_run_is_the_mean_and_opens_like_a_trained_run(run):
    assert merge.available_epochs(run) == [1, 2, 3, 4, 5]
    assert merge.choose_epochs(run, last=2) == [4, 5] and merge.choose_epochs(run, steps=(3, 1)) == [1, 3]
    out = run.parent / "last2"
    metrics = merge.merge_run(run, [4, 5], out)
    a = load_file(str(run / "checkpoints" / "epoch-0004" / "model" / WEIGHTS))
    b = load_file(str(run / "model" / WEIGHTS))
    m = load_file(str(out / "model" / WEIGHTS))
    k = next(k for k in a if a[k].is_floating_point() and not torch.equal(a[k], b[k]))
    torch.testing.assert_close(m[k], (a[k].double() + b[k].double()).div(2).float(), rtol=0, atol=0)
    merged = load_run(out)
    assert run_stage(out).epoch == 5 and metrics["merged"]["epochs"] == [4, 5]
    tok_a, tok_b = load_file(str(run / "tokenizer" / WEIGHTS)), load_file(str(out / "tokenizer" / WEIGHTS))
    assert all(torch.equal(tok_a[k], tok_b[k]) for k in tok_a)  # the source's tokenizer
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(merged.tokenize(x), load_run(run).tokenize(x))


def test_monitor_marks_epochs_where_nll_rises_while_quality_holds():
    t = pd.DataFrame({"epoch": [1, 2, 4, 8, 16], "heldout_nll": [5.0, 4.0, 4.02, 4.5, 5.0],
                      "fd": [3.0, 2.0, 2.05, 2.5, 2.0], "class_consistency": [0.5, 0.9, 0.9, 0.9, 0.7]})
    got = monitor.mark(t, nll_rise=0.05, tol=0.05)
    # epoch 4: NLL within 0.05 of its best; epoch 8: risen but FD 2.5 > 1.05 x 2.0; epoch 16: risen, FD holds,
    # class consistency 0.7 < 0.9 - 0.05
    assert got["nll_risen"].tolist() == [False, False, False, True, True]
    assert got["quality_holds"].tolist() == [True, True, True, False, False]
    t.loc[4, "class_consistency"] = 0.88
    assert monitor.over_memorizing_epochs(monitor.mark(t, 0.05, 0.05)) == [16]


@pytest.mark.parametrize("flags,needle", [
    (["--last", "0"], "--last"), (["--last", "6"], "[1, 5]"), (["--steps", "3,7"], "epoch 7"),
    (["--steps", "3,3"], "repeat"), (["--last", "2", "--steps", "3"], "not both"), ([], "--last K or --steps"),
    (["--steps", "a"], "integers"), (["--threads", "-1"], "--threads"),
])
def test_bad_merge_input_exits_2_with_one_line_and_writes_nothing(run, flags, needle, tmp_path, capsys):
    out = tmp_path / "merged"
    assert main(["iar", "merge", str(run), *flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not out.exists()


def test_merge_and_monitor_refuse_what_is_not_a_finished_run(run, tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    for argv in (["merge", str(tmp_path / "missing"), "--last", "1", "--out", str(tmp_path / "o")],
                 ["merge", str(run), "--last", "1", "--out", str(tmp_path / "taken")],
                 ["monitor", str(tmp_path / "missing")], ["monitor", str(run), "--n-samples", "1"],
                 ["monitor", str(run), "--nll-rise", "nan"], ["monitor", str(run), "--quality-tol", "-1"]):
        assert main(["iar", *argv]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
    assert not (tmp_path / "o").exists() and not (run / "monitor").exists()
