"""Unlearning (memlab.iar.mitigate.unlearn, `memlab iar unlearn`): the losses on constructed cases, every method on
a tiny model, and the command end to end on a tiny trained run (trajectory, stopping rule, the new run, resume,
bad input)."""

import copy
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from memlab.cli import main
from memlab.iar.mitigate import unlearn as U
from memlab.iar.mitigate import unlearn_losses as L
from memlab.iar.mitigate.unlearn_config import METHODS, UnlearnConfig
from tests.iar.tiny_models import tiny_model

torch.set_num_threads(1)


# --- the losses -----------------------------------------------------------------------------------------

def test_selective_loss_ascends_exactly_on_the_memorized_positions_and_descends_on_the_others():
    g = torch.Generator().manual_seed(0)
    ll_TxP = (-torch.rand(3, 7, generator=g)).requires_grad_(True)
    mem_TxP = torch.zeros(3, 7, dtype=torch.bool)
    mem_TxP[0, 2:5] = True
    mem_TxP[2, 6] = True  # 4 memorized positions, 17 others
    b = L.Batch(ll_TxP, ll_TxP.detach(), mem_TxP)
    L.selective(b).backward()
    grad = ll_TxP.grad
    # minimising the loss lowers log p where the gradient is positive: the memorized positions, and only them
    assert torch.allclose(grad[mem_TxP], torch.full((4,), 1 / 4))
    assert torch.allclose(grad[~mem_TxP], torch.full((17,), -1 / 17))
    ga = ll_TxP.detach().clone().requires_grad_(True)
    L.forget_ascent(L.Batch(ga, ga.detach(), mem_TxP)).backward()
    assert torch.allclose(ga.grad, torch.full((3, 7), 1 / 21))  # plain ascent: every position alike


def test_kl_is_zero_for_equal_models_and_positive_otherwise_npo_starts_at_2_log2_over_beta():
    logp = torch.randn(2, 5, 6).log_softmax(-1)
    true = torch.randint(0, 6, (2, 5))
    ll = torch.gather(logp, 2, true[..., None])[..., 0]
    b = L.Batch(ll, ll.clone(), torch.ones(2, 5, dtype=torch.bool), logp, logp.clone(), true)
    assert L.retain_kl(b).item() == 0.0
    b.retain_logp_RxPxV = torch.randn(2, 5, 6).log_softmax(-1)
    assert L.retain_kl(b).item() > 0
    assert L.npo(b, 0.1).item() == pytest.approx(2 / 0.1 * math.log(2))
    b.forget_ll_TxP = ll - 1.0  # the targets' likelihood fell: NPO falls towards 0
    assert 0 < L.npo(b, 0.1).item() < 2 / 0.1 * math.log(2)


def _memorizer():
    """The tiny raster model (9 tokens) fitted to 6 sequences, a reference copy, and its tokens and labels."""
    model = tiny_model("raster").train()
    g = torch.Generator().manual_seed(0)
    tokens, labels = torch.randint(0, 16, (6, 9), generator=g), torch.randint(0, 3, (6,), generator=g)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        model.training_loss(tokens, labels, g).backward()
        opt.step()
    return model.eval(), tokens, labels


@pytest.fixture(scope="module")
def memorizer():
    return _memorizer()


def test_memorized_positions_are_the_reproduced_tokens_after_the_prefix(memorizer):
    model, tokens, labels = memorizer
    mem_TxP = U.memorized_positions(model, tokens, labels, prefix=3)
    gen = model.continue_greedy(tokens, labels, 3)
    assert not mem_TxP[:, :3].any()  # the prefix is given, never "memorized"
    assert torch.equal(mem_TxP[:, 3:], gen[:, 3:] == tokens[:, 3:])
    assert mem_TxP.float().mean() > 0.5  # the fitted model reproduces most of its sequences


def test_kl_term_is_exactly_zero_at_the_start_and_grows_after_a_step(memorizer):
    ref, tokens, labels = memorizer
    cfg = UnlearnConfig(method="kl", retain_size=0, retain_batch=2, lr=1e-2)
    inputs = U.prepare(ref, tokens, labels, np.array([0, 1]), 3, cfg)
    model = copy.deepcopy(ref)
    assert U.diagnostics(model, inputs)["retain_kl"] == 0.0
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    terms = U.train_step(model, opt, inputs, 0, cfg)
    assert terms["loss_retain"] == 0.0  # the KL of the first step, with gradients on
    assert U.diagnostics(model, inputs)["retain_kl"] > 0


@pytest.mark.parametrize("method", METHODS)
def test_every_method_lowers_the_targets_likelihood_in_a_few_steps(memorizer, method):
    ref, tokens, labels = memorizer
    cfg = UnlearnConfig(method=method, retain_size=0, retain_batch=2, lr=3e-3)
    inputs = U.prepare(ref, tokens, labels, np.array([0, 1]), 3, cfg)
    model = copy.deepcopy(ref)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    before = U.diagnostics(model, inputs)
    for s in range(5):
        U.train_step(model, opt, inputs, s, cfg)
    after = U.diagnostics(model, inputs)
    key = "memorized_ll" if method == "selective" else "forget_ll"  # selective lowers only the memorized tokens
    assert after[key] < before[key] - 0.05, (before, after)
    for p, q in zip(ref.parameters(), copy.deepcopy(ref).parameters()):  # the reference is never trained
        assert torch.equal(p, q)


def test_selective_leaves_the_other_positions_at_least_as_likely(memorizer):
    ref, tokens, labels = memorizer
    cfg = UnlearnConfig(method="selective", retain_size=0, retain_batch=2, lr=3e-3)
    inputs = U.prepare(ref, tokens, labels, np.array([0, 1]), 3, cfg)
    assert (~inputs.memorized_TxP).any() and inputs.memorized_TxP.any()
    model = copy.deepcopy(ref)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    before = U.diagnostics(model, inputs)
    for s in range(5):
        U.train_step(model, opt, inputs, s, cfg)
    after = U.diagnostics(model, inputs)
    assert after["memorized_ll"] < before["memorized_ll"] - 0.05
    assert after["other_ll"] >= before["other_ll"] - 0.01  # descended on, not ascended


def test_retain_draw_is_seeded_and_avoids_the_targets():
    a = U.retain_draw(20, np.array([0, 3]), 5, seed=1)
    assert np.array_equal(a, U.retain_draw(20, np.array([0, 3]), 5, seed=1)) and len(a) == 5
    assert not set(a) & {0, 3} and list(a) == sorted(a)
    assert len(U.retain_draw(20, np.array([0, 3]), 0, seed=1)) == 18


# --- the command on a tiny trained run ------------------------------------------------------------------

@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A raster run whose 2 planted duplicates (4 copies each) are extracted at the final epoch."""
    from memlab.iar.config import IARTrainConfig, ImageDataConfig, RunConfig
    from memlab.iar.train import train_run

    out = tmp_path_factory.mktemp("unlearn") / "run"
    cfg = RunConfig(data=ImageDataConfig(n_train=12, n_heldout=16, size=16, duplicates=4, n_duplicated=2),
                    train=IARTrainConfig(arch="raster", epochs=40, tokenizer_epochs=2, width=32, depth=2, heads=2,
                                         lr=1e-2, batch_size=16, codebook_size=16, latent_channels=4,
                                         tokenizer_channels=(8, 8, 8)))
    train_run(cfg, out, progress=False, figures=False)
    return out


FAST = ["--trajectory-samples", "8", "--n-samples", "16", "--retain-size", "4", "--retain-batch", "2",
        "--threads", "1"]


def test_unlearn_writes_a_run_scored_against_the_original_and_stops_when_no_target_is_left(capsys, run_dir,
                                                                                           tmp_path):
    from memlab.iar.config import ExtractConfig
    from memlab.iar.evalsets import load as load_sets
    from memlab.iar.load import load_run, load_run_data
    from memlab.iar.pipeline import fold_duplicates
    from memlab.iar.yardstick import make_baseline, score_model

    out = tmp_path / "u"
    code = main(["iar", "unlearn", str(run_dir), "--method", "kl", "--steps", "40", "--eval-every", "2",
                 "--lr", "1e-2", "--out", str(out), "--json", *FAST])
    assert code == 0
    metrics = json.loads(capsys.readouterr().out)
    u = metrics["unlearn"]
    traj = pd.read_csv(out / "trajectory.csv")
    assert traj["step"].tolist() == list(range(0, u["steps"] + 1, 2)) and traj["retain_kl"].iloc[0] == 0.0
    assert traj["T_extracted"].iloc[0] == 2  # the original model regurgitates both targets
    assert u["stopped"] == "all targets unextractable" and u["steps"] < 40
    assert traj["T_extracted"].iloc[-1] == 0 and (traj["T_extracted"].iloc[:-1] > 0).all()
    assert (out / "trajectory.png").stat().st_size > 0 and not (out / "state").exists()
    # the new run: the tokenizer byte for byte, other weights, the same evaluation sets; it loads like a trained run
    for f in (run_dir / "tokenizer").iterdir():
        assert (out / "tokenizer" / f.name).read_bytes() == f.read_bytes()
    assert load_sets(out) == load_sets(run_dir)
    original, unlearned = load_run(run_dir), load_run(out)
    assert any(not torch.equal(p, q) for p, q in zip(original.parameters(), unlearned.parameters()))
    # scored against the ORIGINAL model's baseline: recomputing it on the loaded run gives the recorded numbers
    data = fold_duplicates(*load_run_data(run_dir))
    base = make_baseline(original, data, load_sets(run_dir), ExtractConfig(), 16, 16, 0)
    assert u["threshold"] == base.threshold
    again = score_model(unlearned, original, base)
    for key in ("T_extracted", "C_extracted", "heldout_nll", "sample_nll", "fd"):
        assert again[key] == pytest.approx(u["final"][key], abs=1e-9), key
    assert main(["iar", "extract", str(out)]) == 0  # the other commands read the new run


def test_an_interrupted_unlearning_resumes_to_the_same_trajectory(capsys, run_dir, tmp_path, monkeypatch):
    args = ["iar", "unlearn", str(run_dir), "--method", "selective", "--steps", "6", "--eval-every", "2",
            "--lr", "2e-4", *FAST]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    assert len(pd.read_csv(tmp_path / "whole" / "trajectory.csv")) == 4  # steps 0, 2, 4, 6: no early stop
    real, calls = U._save_point, {"n": 0}

    def save_then_die(*a, **k):
        real(*a, **k)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(U, "_save_point", save_then_die)
        assert main([*args, "--out", str(tmp_path / "cut")]) == 130
    cut = tmp_path / "cut"
    assert not (cut / "metrics.json").exists() and (cut / "state" / "trajectory.json").is_file()
    assert len(json.loads((cut / "state" / "trajectory.json").read_text())["rows"]) == 3  # steps 0, 2, 4 kept
    assert main([*args, "--out", str(cut)]) == 2  # a started run is not overwritten without --resume
    assert main([*args, "--out", str(cut), "--resume"]) == 0
    whole, resumed = (pd.read_csv(tmp_path / d / "trajectory.csv") for d in ("whole", "cut"))
    timing = [c for c in whole.columns if "seconds" in c]
    pd.testing.assert_frame_equal(whole.drop(columns=timing), resumed.drop(columns=timing))
    assert main([*args, "--lr", "1e-3", "--out", str(cut), "--resume"]) == 2  # another config: refused
    capsys.readouterr()


def _one_line_error(capsys, code, needle):
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and needle in err, err


@pytest.mark.parametrize("extra, needle", [
    (["--method", "forget"], "unknown --method 'forget'; allowed: ga, graddiff, kl, npo, selective"),
    (["--steps", "-3"], "--steps must be an integer >= 1, got -3"),
    (["--steps", "0"], "--steps must be an integer >= 1, got 0"),
    (["--eval-every", "0"], "--eval-every must be an integer >= 1"),
    (["--lr", "0"], "--lr must be > 0"),
    (["--lr", "nan"], "--lr must be a number > 0, got nan"),
    (["--beta", "inf"], "--beta must be finite"),
    (["--kl-weight", "-1"], "--kl-weight must be >= 0"),
    (["--retain-size", "-1"], "--retain-size must be an integer >= 0"),
    (["--retain-size", "11"], "--retain-size must be <= 10, the training images outside the 2 targets"),
    (["--retain-batch", "0"], "--retain-batch must be an integer >= 1"),
    (["--trajectory-samples", "300"], "--trajectory-samples must be <= n_samples (256)"),
    (["--prefix", "99"], "--prefix must be in [1, 15] tokens"),
    (["--stage", "early"], "unknown --stage 'early'"),
    (["--checkpoint", "7"], "no checkpoint of epoch 7"),
    (["--threads", "-1"], "--threads must be an integer >= 0"),
    (["--resume"], "--resume:"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(capsys, run_dir, tmp_path, extra, needle):
    before = sorted(p.name for p in run_dir.iterdir())
    _one_line_error(capsys, main(["iar", "unlearn", str(run_dir), "--out", str(tmp_path / "u"), *extra]), needle)
    assert not (tmp_path / "u").exists()
    assert sorted(p.name for p in run_dir.iterdir()) == before


def test_missing_or_wrong_run_and_out_exit_2(capsys, run_dir, tmp_path):
    _one_line_error(capsys, main(["iar", "unlearn", "/no/such/run", "--out", str(tmp_path / "u")]),
                    "RUN /no/such/run does not exist or is not a directory")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("x")
    _one_line_error(capsys, main(["iar", "unlearn", str(tmp_path / "junk"), "--out", str(tmp_path / "u")]),
                    "is a directory memlab did not write, not a")
    _one_line_error(capsys, main(["iar", "unlearn", str(run_dir), "--out", str(tmp_path / "junk")]),
                    "is not empty and memlab did not write it")
    _one_line_error(capsys, main(["iar", "unlearn", str(run_dir), "--out", str(run_dir)]),
                    "not a `memlab iar unlearn` run")
    assert not (tmp_path / "u").exists()
