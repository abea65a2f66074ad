"""What trains on an external model (`--model diffusers:PATH`): unlearning into a derived work directory (its own
transformer/, every other component read from the untouched source pipeline) that every IAR command opens,
resumes and scores on the base's yardstick (`memlab iar mitigations`); INJ on the adapter. On a tiny random
pipeline trained here until it reproduces its six training images (memlab.iar.adapters.tiny)."""

import hashlib
import io
import json
import shutil
import sys

import pandas as pd
import pytest
import torch

from memlab.cli import main
from memlab.iar.adapters.tiny import caption_folder, save_memorizing_pipeline
from memlab.iar.mitigate import unlearn as U

torch.set_num_threads(1)
FAST = ["--trajectory-samples", "8", "--n-samples", "16", "--retain-size", "2", "--retain-batch", "2",
        "--threads", "1"]
YARD = ["--ks", "10", "--factors", "0", "--cloud-ks", "10", "--n-draws", "5", "--n-samples", "16", "--n-boot",
        "50", "--candidates", "4"]


def _run(argv) -> dict:
    """main(argv) with --json; -> the JSON it printed (exit 0 asserted)."""
    out = io.StringIO()
    real, sys.stdout = sys.stdout, out
    try:
        code = main([*argv, "--json"])
    finally:
        sys.stdout = real
    assert code == 0
    return json.loads(out.getvalue())


def _digest(folder) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    """(pipeline dir, its file digests, caption folder, work dir W, U unlearned from W, its metrics). The unlearning
    sets W up (--model) and fixes its evaluation sets."""
    root = tmp_path_factory.mktemp("derived")
    images = caption_folder(root / "images")
    pipe = root / "pipe"
    save_memorizing_pipeline(pipe, images)
    before = _digest(pipe)
    work = root / "work"
    metrics = _run(["iar", "unlearn", str(work), "--model", f"diffusers:{pipe}", "--images", str(images), "--method",
                    "ga", "--steps", "4", "--eval-every", "2", "--lr", "1e-3", "--out", str(root / "u"), *FAST])
    return pipe, before, images, work, root / "u", metrics


def test_unlearning_writes_a_derived_work_directory_and_leaves_the_pipeline_alone(setting):
    from memlab.iar.load import load_run

    pipe, before, _, work, u, metrics = setting
    assert _digest(pipe) == before  # the source pipeline is read, never written
    cfg = json.loads((u / "config.json").read_text())
    assert cfg["kind"] == "iar-external" and cfg["external"]["transformer"] == "transformer"
    assert cfg["external"]["model"] == f"diffusers:{pipe}" and cfg["derived"]["base_run"] == str(work.resolve())
    assert sorted(p.name for p in (u / "transformer").iterdir()) == ["config.json", "diffusion_pytorch_model.safetensors"]
    assert (u / "evalsets.json").read_text() == (work / "evalsets.json").read_text()
    traj = pd.read_csv(u / "trajectory.csv")
    assert traj["step"].tolist() == [0, 2, 4] and traj["T_extracted"].iloc[0] >= 1  # the targets are memorized
    assert traj["forget_ll"].iloc[-1] < traj["forget_ll"].iloc[0] - 0.1  # ascent lowers their likelihood
    assert traj["T_extracted"].iloc[-1] < traj["T_extracted"].iloc[0]
    assert metrics["unlearn"]["steps"] == 4 and not (u / "state").exists()
    original, unlearned = load_run(work), load_run(u)
    assert any(not torch.equal(p, q) for p, q in zip(original.uvit.parameters(), unlearned.uvit.parameters()))
    for a, b in zip(original.vqvae.parameters(), unlearned.vqvae.parameters()):  # the tokens stay the pipeline's
        assert torch.equal(a, b)
    x = original.decode(torch.zeros(1, 16, dtype=torch.long))
    assert torch.equal(original.tokenize(x), unlearned.tokenize(x))


def test_every_command_opens_the_unlearned_directory_and_its_numbers_move(setting):
    _, _, _, work, u, _ = setting
    base, mine = (_run(["iar", "extract", str(d), "--candidates", "6"]) for d in (work, u))
    targets = json.loads((work / "evalsets.json").read_text())["target_ids"]
    acc = {d: pd.read_csv(d / "extract" / "candidates.csv").set_index("image_id").loc[targets, "tf_acc"].mean()
           for d in (work, u)}
    assert acc[u] < acc[work]  # teacher-forced accuracy on the targets falls
    assert base["n_candidates"] == mine["n_candidates"] == 6
    assert main(["iar", "localize", str(u)]) == 0
    assert pd.read_parquet(u / "localize" / "unitmem.parquet")["score"].std() > 0
    assert main(["iar", "ablate", str(u), "--localizer", "activation", *YARD]) == 0  # U's own yardstick
    assert pd.read_csv(u / "yardstick" / "verdicts.csv")["method"].eq("activation").any()


def test_the_analyses_open_the_unlearned_directory(setting):
    _, _, _, _, u, _ = setting
    out = _run(["iar", "analyze", str(u), "--what", "entropy,inference,perturb,frequency"])
    assert out["n_train"] == 6 and (u / "analyze" / "metrics.json").is_file()
    assert pd.read_csv(u / "analyze" / "frequency_onset.csv").empty  # an external model has no training stages


def test_what_the_analyses_ask_of_the_adapter(setting):
    """The codebook for 'nearest code' perturbations, and no training stages (the frequency onset is empty)."""
    from types import SimpleNamespace

    from memlab.iar.analyze.frequency import onset_table
    from memlab.iar.load import load_run

    _, _, _, work, u, _ = setting
    model = load_run(u)
    vectors = model.code_vectors()
    assert vectors.shape == (16, 4) and torch.equal(vectors, model.vqvae.quantize.embedding.weight.detach())
    onset = onset_table(SimpleNamespace(data=SimpleNamespace(copies=[1] * 6)), work)
    assert onset.empty and list(onset.columns) == ["epoch", "copies", "accuracy"]


def test_the_mitigations_scoreboard_scores_it_on_the_base_yardstick(setting):
    _, _, _, work, u, metrics = setting
    assert main(["iar", "ablate", str(work), "--localizer", "activation", *YARD]) == 0  # on the sets U was made with
    out = _run(["iar", "mitigations", str(work), "--method", f"ga={u}"])
    board = pd.read_csv(work / "mitigations" / "mitigations.csv").set_index("method")
    assert list(board["kind"]) == ["unedited", "unit edit", "mitigation"]
    final = metrics["unlearn"]["final"]  # the unlearning's last point was scored on the same baseline
    assert board.loc["ga", "T_extracted"] == final["T_extracted"] and board.loc["ga", "compute_steps"] == 4
    assert board.loc["ga", "heldout_nll"] == pytest.approx(final["heldout_nll"], rel=1e-6)
    assert out["baseline_matches_edits"] is True


def test_mitigations_of_an_external_base_refuse_other_image_sets_and_bad_devices(setting, tmp_path, capsys):
    _, _, _, work, u, _ = setting
    other = _moved(u, tmp_path, lambda bad, cfg: cfg["external"].update(images=str(caption_folder(tmp_path / "o"))))
    before = _digest(work)
    _one_line_error(capsys, main(["iar", "mitigations", str(work), "--method", f"x={other}"]),
                    "was set up with another images than BASE")
    if (work / "yardstick" / "metrics.json").is_file():  # after the scoreboard test: the yardstick is there
        _one_line_error(capsys, main(["iar", "mitigations", str(work), "--method", f"ga={u}", "--device", "tpu",
                                      "--tag", "t"]), "unknown --device 'tpu'")
    assert _digest(work) == before


def test_an_interrupted_unlearning_of_an_external_model_resumes_to_the_same_trajectory(setting, tmp_path, monkeypatch,
                                                                                       capsys):
    _, _, _, work, u, _ = setting
    args = ["iar", "unlearn", str(work), "--method", "ga", "--steps", "4", "--eval-every", "2", "--lr", "1e-3", *FAST]
    real, calls = U._save_point, {"n": 0}

    def save_then_die(*a, **k):
        real(*a, **k)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt

    cut = tmp_path / "cut"
    with monkeypatch.context() as m:
        m.setattr(U, "_save_point", save_then_die)
        assert main([*args, "--out", str(cut)]) == 130
    assert not (cut / "transformer").exists() and (cut / "state" / "latest.json").is_file()
    capsys.readouterr()
    code = main(["iar", "extract", str(cut)])  # an unfinished unlearning does not open
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "is an unfinished unlearning" in err and "--resume" in err
    assert main([*args, "--out", str(cut), "--resume"]) == 0
    whole, resumed = (pd.read_csv(d / "trajectory.csv") for d in (u, cut))
    timing = [c for c in whole.columns if "seconds" in c]
    pd.testing.assert_frame_equal(whole.drop(columns=timing), resumed.drop(columns=timing))
    assert _digest(cut / "transformer") == _digest(u / "transformer")  # same seed, same weights


def _one_line_error(capsys, code, needle):
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err, err


def _moved(u, tmp_path, edit):
    bad = tmp_path / "bad"
    shutil.copytree(u, bad, ignore=shutil.ignore_patterns("extract", "localize", "analyze", "yardstick", "localizers",
                                                          "cache"))
    cfg = json.loads((bad / "config.json").read_text())
    edit(bad, cfg)
    (bad / "config.json").write_text(json.dumps(cfg))
    return bad


@pytest.mark.parametrize("how, needle", [
    ("pipeline-gone", "the pipeline it was set up with (diffusers:/no/such/pipe"),
    ("no-transformer", "holds no transformer"),
    ("other-transformer", "it was not made from this pipeline"),
    ("bad-pointer", "malformed"),
])
def test_a_derived_directory_whose_pipeline_or_transformer_is_unusable_exits_2(setting, tmp_path, capsys, how,
                                                                               needle):
    _, _, _, _, u, _ = setting

    def edit(bad, cfg):
        if how == "pipeline-gone":
            cfg["external"]["model"] = "diffusers:/no/such/pipe"
        elif how == "no-transformer":
            shutil.rmtree(bad / "transformer")
        elif how == "other-transformer":
            t = json.loads((bad / "transformer" / "config.json").read_text())
            (bad / "transformer" / "config.json").write_text(json.dumps({**t, "intermediate_size": 64}))
        else:
            cfg["external"]["transformer"] = "../elsewhere"

    bad = _moved(u, tmp_path, edit)
    before = _digest(bad)
    for cmd in (["extract", str(bad)], ["unlearn", str(bad), "--out", str(tmp_path / "u2")]):
        _one_line_error(capsys, main(["iar", *cmd]), needle)
    assert _digest(bad) == before and not (tmp_path / "u2").exists()


@pytest.mark.parametrize("extra, needle", [
    (["--precision", "bf16"], "--precision bf16: unlearning fine-tunes the transformer in fp32"),
    (["--out", "WORK"], "is RUN itself"),
    (["--retain-size", "9"], "--retain-size must be <= "),
    (["--images", "OTHER"], "was set up with --images"),
])
def test_bad_unlearning_input_on_an_external_model_exits_2_and_writes_nothing(setting, tmp_path, capsys, extra,
                                                                              needle):
    _, _, _, work, _, _ = setting
    other = caption_folder(tmp_path / "other", seed=1) if "OTHER" in extra else None
    extra = [str(work) if x == "WORK" else str(other) if x == "OTHER" else x for x in extra]
    before = _digest(work)
    argv = ["iar", "unlearn", str(work), *FAST, *extra]
    _one_line_error(capsys, main(argv if "--out" in extra else [*argv, "--out", str(tmp_path / "u2")]), needle)
    assert _digest(work) == before and not (tmp_path / "u2").exists()


def test_inj_fine_tunes_only_the_chosen_outgoing_columns_of_the_adapter_and_reads_them_back(setting, tmp_path):
    import copy

    from memlab.iar.checkpoint import publish
    from memlab.iar.config import InjectConfig
    from memlab.iar.inject import draw_injection, inject, outgoing
    from memlab.iar.load import load_run, load_run_data

    _, _, _, work, _, _ = setting
    base = load_run(work)
    _, _, held, held_labels, _ = load_run_data(work)
    rows, units = draw_injection(base, len(held), 2, 0.1, 0)
    model = copy.deepcopy(base)
    assert model.vqvae is base.vqvae and model.text_encoder is base.text_encoder  # shared, never copied
    assert model.uvit is not base.uvit and torch.equal(model.cond_hidden_CxTxD, base.cond_hidden_CxTxD)
    r = torch.as_tensor(rows)
    metrics = inject(model, model.tokenize(held[r]), held_labels[r], units, InjectConfig(n_images=2, max_epochs=3), 0)
    assert metrics["epochs"] >= 1 and metrics["n_units"] == len(units) == round(0.1 * 64)
    proj_b, proj_i = outgoing(base), outgoing(model)
    for layer in proj_b:  # inject() itself refuses any change outside the free columns
        free = set(units.loc[units["layer"] == layer, "unit"].astype(int))
        moved = set((proj_b[layer].weight != proj_i[layer].weight).any(0).nonzero().flatten().tolist())
        assert moved == free, (layer, moved, free)
    publish(model, tmp_path / "injected")
    back = base.with_published(tmp_path / "injected", "injected model")
    assert all(torch.equal(p, q) for p, q in zip(back.parameters(), model.parameters()))
    assert back.captions == base.captions and back.vqvae is base.vqvae


@pytest.mark.slow
def test_inj_runs_on_the_adapter_and_moves_only_the_chosen_outgoing_columns(setting, capsys):
    """INJ on an external model: the injected images (two held-out images and their captions) go into the outgoing
    weights of 10% of the units of an fp32 copy of the transformer; recall@k joins the leaderboard; a second run
    reuses the injected model (read back through the adapter)."""
    from memlab.iar.inject import outgoing
    from memlab.iar.load import load_run

    _, _, _, work, _, _ = setting
    argv = ["iar", "localizers", str(work), "--methods", "zero-out,activation", *YARD, "--inject", "--n-images", "2",
            "--fractions", "0.1", "--seeds", "0", "--max-epochs", "40", "--tag", "inj"]
    assert main(argv) == 0
    here = work / "inject" / "seed-0-frac-0.1"
    truth = pd.read_parquet(here / "truth.parquet")
    assert len(truth) == round(0.1 * 64)
    base, injected = load_run(work), load_run(work).with_published(here / "model", "injected model")
    proj_b, proj_i = outgoing(base), outgoing(injected)
    for layer in proj_b:
        free = sorted(truth.loc[truth["layer"] == layer, "unit"].astype(int))
        moved = (proj_b[layer].weight != proj_i[layer].weight).any(0).nonzero().flatten().tolist()
        assert moved and set(moved) <= set(free) if free else not moved, (layer, moved, free)
    inj_metrics = json.loads((here / "metrics.json").read_text())
    assert inj_metrics["n_images"] == 2 and inj_metrics["epochs"] >= 1
    board = pd.read_csv(work / "leaderboard-inj" / "leaderboard.csv")
    summary = pd.read_csv(work / "inject" / "inj.csv")
    whole = summary[(summary["block"] == -1) & (summary["method"] == "zero-out")].iloc[0]
    assert board["inj_recall_f0.1"].iloc[0] == pytest.approx(whole["recall"])
    assert board["inj_chance_f0.1"].iloc[0] == pytest.approx(6 / 64)
    weights = _digest(here / "model")
    assert main(argv) == 0 and _digest(here / "model") == weights  # reused, not fine-tuned again
    assert pd.read_csv(work / "inject" / "inj.csv").equals(summary)
    capsys.readouterr()
