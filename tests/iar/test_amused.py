"""`--model diffusers:PATH`: a tiny random aMUSEd pipeline saved with save_pretrained (memlab.iar.adapters.tiny),
loaded through the adapter. Round trip and agreement with AmusedPipeline itself, the interface contract tests of
the other models, UnitMem / extraction / a localizer end to end from the command line, and bad pipeline
directories and caption files -> exit 2, one line, nothing written."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from memlab.cli import main
from tests.iar import test_interface as ti
from tests.iar import test_models as tm
from memlab.iar.adapters.tiny import CODEBOOK, caption_folder, save_tiny_pipeline, tiny_components

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(pipeline dir, its components in memory, caption folder)."""
    root = tmp_path_factory.mktemp("amused")
    parts = save_tiny_pipeline(root / "pipe")
    return root / "pipe", parts, caption_folder(root / "images")


@pytest.fixture(scope="module")
def model(saved):
    from memlab.iar.adapters.loading import load_amused
    from memlab.iar.adapters.pipeline_dir import check_pipeline_dir

    m = load_amused(check_pipeline_dir(saved[0]), generate_steps=4)  # the contracts hold for any number of steps
    m.set_captions(["red cab", "blue dog", "a fig", ""])
    return m


def _in_memory(parts):
    from memlab.iar.adapters.amused import AmusedIAR

    m = AmusedIAR(parts["vqvae"], parts["text_encoder"], parts["tokenizer"], parts["transformer"], parts["scheduler"],
                  generate_steps=4)
    m.set_captions(["red cab", "blue dog", "a fig", ""])
    return m.eval()


def test_round_trip_same_outputs_before_save_and_after_load(saved, model):
    before = _in_memory(saved[1])
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2])
    t = before.tokenize(x)
    assert t.shape == (3, 16) and t.dtype == torch.long and 0 <= int(t.min()) and int(t.max()) < CODEBOOK
    assert len(t.unique()) > 2  # the codebook is used, not one code
    assert torch.equal(model.tokenize(x), t)
    assert torch.equal(model.decode(t), before.decode(t))
    with torch.no_grad():
        torch.testing.assert_close(model.teacher_forced_logits(t, y), before.teacher_forced_logits(t, y), rtol=0, atol=0)
    assert torch.equal(model.continue_greedy(t, y, 4), before.continue_greedy(t, y, 4))
    assert torch.equal(model.generate(y, [3, 4, 5]), before.generate(y, [3, 4, 5]))
    for a, b in zip(model.parameters(), before.parameters()):
        assert torch.equal(a, b)


def test_sampling_is_what_amused_pipeline_samples(saved, model):
    """Same caption, seed and steps, no guidance: AmusedPipeline's latents are our sample, token for token (so
    conditioning, micro-conditioning and the scheduler are the pipeline's)."""
    from diffusers import AmusedPipeline

    pipe = AmusedPipeline(**saved[1])
    pipe.set_progress_bar_config(disable=True)
    for caption_id, seed in ((1, 7), (2, 8)):
        latents_1xGxG = pipe(model.captions[caption_id], num_inference_steps=12, guidance_scale=1.0, output_type="latent",
                             generator=torch.Generator().manual_seed(seed)).images
        ours = model.generate(torch.tensor([caption_id]), [seed], steps=12)
        assert torch.equal(ours, latents_1xGxG.reshape(1, -1))
    a = model.generate(torch.tensor([0, 1, 2]), [1, 2, 3])  # sample i depends only on seed i
    assert torch.equal(a[1:2], model.generate(torch.tensor([1]), [2])) and not torch.equal(a[:1], a[1:2])


def test_guidance_mixes_the_empty_caption(saved):
    from memlab.iar.adapters.loading import load_amused
    from memlab.iar.adapters.pipeline_dir import check_pipeline_dir

    g = load_amused(check_pipeline_dir(saved[0]), guidance=3.0)
    g.set_captions(["red cab", ""])
    ids = torch.full((1, 16), CODEBOOK)
    with torch.no_grad():
        cond, uncond = g(ids, torch.tensor([0])), g(ids, torch.tensor([1]))
        torch.testing.assert_close(g.sampling_logits(ids, torch.tensor([0])), uncond + 3.0 * (cond - uncond))


CONTRACTS = [tm.test_scored_positions_are_exactly_those_whose_logits_ignore_their_own_token,
             tm.test_revealed_mask_is_what_continue_greedy_keeps_and_reads,
             ti.test_models_are_modules_with_train_eval_and_device,
             ti.test_prefixes_and_ranking_positions_are_consistent,
             ti.test_quality_features_are_a_deterministic_per_image_function]


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda f: f.__name__)
def test_interface_contract(contract, model, monkeypatch):
    """The other models' contract tests, run on the adapter (their `masked` case: the adapter is a masked model)."""
    monkeypatch.setattr(tm, "_any", lambda name: model)
    monkeypatch.setattr(ti, "_model", lambda name: model)
    contract("masked")
    model.eval()


def test_units_are_the_geglu_units_of_every_transformer_block(model):
    units = model.units()
    assert list(units) == ["block.0.mlp", "block.1.mlp"]
    spec = units["block.1.mlp"]
    assert spec.path == "uvit.transformer_layers.1.ff.net.0" and spec.weight.shape == (32, 16)
    seen = {}
    h = spec.module.register_forward_hook(lambda m, i, o: seen.__setitem__("a", o.detach().clone()))
    t, y = torch.randint(0, CODEBOOK, (2, 16)), torch.tensor([0, 1])
    try:
        with torch.no_grad():
            model.teacher_forced_logits(t, y)
            before = seen["a"]
            row = spec.weight[5].clone()
            spec.weight[5] = 0.0
            model.teacher_forced_logits(t, y)
            spec.weight[5] = row
    finally:
        h.remove()
    assert before.shape == (2, 16, 32) and before[..., 5].abs().max() > 0
    assert seen["a"][..., 5].abs().max() == 0  # zero incoming row -> unit silent
    torch.testing.assert_close(seen["a"][..., :5], before[..., :5])


def test_auto_batch_size_follows_free_memory(saved, monkeypatch):
    from memlab.iar.adapters import loading
    from memlab.iar.adapters.pipeline_dir import check_pipeline_dir

    pdir = check_pipeline_dir(saved[0])
    per_row = loading.row_bytes(pdir, 4)
    assert per_row == 2 * (16 * (16 * 16 + 4 * 32) * 4 + 16 * 16 * 16 * 4) + 3 * 16 * CODEBOOK * 4
    monkeypatch.setattr(loading, "free_bytes", lambda device: 2 * 5 * per_row + 1)
    assert loading.auto_batch_size(pdir, "cpu", torch.float32, 64) == 5
    monkeypatch.setattr(loading, "free_bytes", lambda device: 1 << 40)
    assert loading.auto_batch_size(pdir, "cpu", torch.float32, 64) == 64  # never above the config's own on a CPU


# --- the commands --------------------------------------------------------------------------------------------

def _one_line_error(capsys, code, needle):
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err, err


@pytest.fixture(scope="module")
def work(saved, tmp_path_factory):
    """A work directory after localize and extract through --model; -> (RUN, {command: metrics})."""
    pipe, _, images = saved
    run = tmp_path_factory.mktemp("work") / "run"
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        for cmd, extra in (("localize", ["--model", f"diffusers:{pipe}", "--images", str(images)]),
                           ("extract", ["--candidates", "4"])):
            import io
            import sys

            buf = io.StringIO()
            mp.setattr(sys, "stdout", buf)
            assert main(["iar", cmd, str(run), "--json", *extra]) == 0
            out[cmd] = json.loads(buf.getvalue())
    return run, out


def test_unitmem_and_extraction_end_to_end(work, saved):
    run, out = work
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["kind"] == "iar-external" and cfg["external"]["model"] == f"diffusers:{saved[0]}"
    loc = out["localize"]
    assert loc["n_images"] == 6 and loc["n_units"] == 2 * 32
    table = pd.read_parquet(run / "localize" / "unitmem.parquet")
    assert table["score"].between(0, 1).all() and table["score"].std() > 0
    ext = out["extract"]
    assert ext["n_candidates"] == 4 and ext["prefix"] == 4 and 0 <= ext["threshold"] <= 1
    cand = pd.read_csv(run / "extract" / "candidates.csv")
    lines = [json.loads(x) for x in (saved[2] / "captions.jsonl").read_text().splitlines()]
    captions = {x["file"]: x["caption"] for x in lines}
    assert [captions[i] for i in cand["image_id"]] == cand["caption"].tolist()  # each target's own caption
    pre = pd.read_csv(run / "extract" / "prefixes.csv")
    assert pre["image_id"].tolist() == cand["image_id"].tolist()
    from memlab.iar.load import load_run, load_run_data

    m = load_run(run)  # every command that loads through memlab.iar.load gets the adapter
    train, labels, *_, ids = load_run_data(run)
    tokens = m.tokenize(train)
    shown = m.revealed_mask(4).nonzero().flatten()
    row = ids.index(cand["image_id"][0])
    assert pre["positions"][0].split() == [str(p) for p in shown.tolist()]
    assert pre["tokens"][0].split() == [str(v) for v in tokens[row, shown].tolist()]  # the prefix it was given
    assert m.captions[int(labels[row])] == cand["caption"][0]


def test_a_localizer_runs_on_the_work_directory(work, capsys):
    run, _ = work
    code = main(["iar", "ablate", str(run), "--localizer", "activation", "--ks", "10", "--factors", "0",
                 "--cloud-ks", "10", "--n-draws", "5", "--n-samples", "8", "--n-boot", "50", "--candidates", "4",
                 "--targets", "img0.png,img1.png"])
    assert code == 0, capsys.readouterr().err
    verdicts = pd.read_csv(run / "yardstick" / "verdicts.csv")
    assert len(verdicts) >= 1
    units = pd.read_parquet(next((run / "localizers" / "activation").glob("*.parquet")))
    assert len(units) == 2 * 32


def test_work_directory_keeps_its_model_and_image_set(work, saved, tmp_path, capsys):
    run, _ = work
    other = caption_folder(tmp_path / "other", seed=1)
    _one_line_error(capsys, main(["iar", "extract", str(run), "--images", str(other)]), "was set up with --images")
    _one_line_error(capsys, main(["iar", "extract", str(run), "--checkpoint", "3"]), "--checkpoint/--stage")
    _one_line_error(capsys, main(["iar", "extract", str(tmp_path / "new"), "--model", f"diffusers:{saved[0]}"]),
                    "--model needs --images DIR")
    _one_line_error(capsys, main(["iar", "extract", str(tmp_path / "new"), "--model", f"hub:{saved[0]}",
                                  "--images", str(other)]), "unknown --model scheme 'hub'; allowed: diffusers")
    assert not (tmp_path / "new").exists()


def _broken(pipe, tmp_path, how):
    bad = tmp_path / "pipe"
    shutil.copytree(pipe, bad)
    index = json.loads((bad / "model_index.json").read_text())
    if how == "no-transformer-dir":
        shutil.rmtree(bad / "transformer")
    elif how == "no-text-encoder-entry":
        del index["text_encoder"]
    elif how == "wrong-class-in-index":
        index["transformer"] = ["diffusers", "UNet2DModel"]
    elif how == "wrong-class-in-config":
        cfg = json.loads((bad / "vqvae" / "config.json").read_text())
        (bad / "vqvae" / "config.json").write_text(json.dumps({**cfg, "_class_name": "AutoencoderKL"}))
    elif how == "pickle-weights":
        w = bad / "transformer" / "diffusion_pytorch_model.safetensors"
        w.rename(w.with_suffix(".bin"))
    elif how == "no-index":
        (bad / "model_index.json").unlink()
    elif how == "truncated-weights":
        w = bad / "transformer" / "diffusion_pytorch_model.safetensors"
        w.write_bytes(w.read_bytes()[:200])
    (bad / "model_index.json").write_text(json.dumps(index)) if how != "no-index" else None
    return bad


@pytest.mark.parametrize("how, needle", [
    ("no-transformer-dir", "has no transformer/config.json"),
    ("no-text-encoder-entry", "has no text_encoder component in model_index.json; an aMUSEd pipeline needs vqvae (VQModel)"),
    ("wrong-class-in-index", "transformer is a UNet2DModel (model_index.json); aMUSEd needs UVit2DModel"),
    ("wrong-class-in-config", "config.json describes a AutoencoderKL; aMUSEd needs VQModel"),
    ("pickle-weights", "has no safetensors weights (diffusion_pytorch_model.safetensors) (diffusion_pytorch_model.bin"),
    ("no-index", "is not a diffusers pipeline directory: no model_index.json"),
    ("truncated-weights", "cannot load the UVit2DModel in"),
])
def test_bad_pipeline_directory_exits_2_with_one_line(saved, tmp_path, capsys, how, needle):
    bad = _broken(saved[0], tmp_path, how)
    run = tmp_path / "run"
    _one_line_error(capsys, main(["iar", "localize", str(run), "--model", f"diffusers:{bad}", "--images",
                                  str(saved[2])]), needle)
    assert not run.exists()


@pytest.mark.parametrize("line, needle", [
    ('{"file": "img0.png"}', '"caption" must be a string'),
    ('{"file": "nope.png", "caption": "x"}', "no image"),
    ('{"file": "img0.png", "caption": "x", "split": "test"}', '"split" must be one of train, heldout'),
    ('{"file": "img0.png", "caption": "x", "copies": 0}', '"copies" must be an integer >= 1'),
    ('{"file": "../img0.png", "caption": "x"}', "must be a path inside"),
    ('not json', "malformed JSON"),
])
def test_bad_captions_file_exits_2_with_one_line(saved, tmp_path, capsys, line, needle):
    images = tmp_path / "images"
    shutil.copytree(saved[2], images)
    with open(images / "captions.jsonl", "a") as f:
        f.write(line + "\n")
    run = tmp_path / "run"
    _one_line_error(capsys, main(["iar", "extract", str(run), "--model", f"diffusers:{saved[0]}", "--images",
                                  str(images)]), needle)
    assert not run.exists()


def test_captions_need_train_and_heldout_images(saved, tmp_path, capsys):
    images = tmp_path / "images"
    shutil.copytree(saved[2], images)
    rows = [json.loads(x) for x in (images / "captions.jsonl").read_text().splitlines()]
    (images / "captions.jsonl").write_text("".join(json.dumps({**r, "split": "train"}) + "\n" for r in rows))
    _one_line_error(capsys, main(["iar", "extract", str(tmp_path / "run"), "--model", f"diffusers:{saved[0]}",
                                  "--images", str(images)]), "lists 10 train and 0 held-out images")
    assert np.isfinite(len(rows)) and not (tmp_path / "run").exists()


def test_tiny_components_are_seeded():
    a, b, c = tiny_components(seed=3), tiny_components(seed=3), tiny_components(seed=4)
    assert all(torch.equal(p, q) for p, q in zip(a["transformer"].parameters(), b["transformer"].parameters()))
    assert not torch.equal(next(a["transformer"].parameters()), next(c["transformer"].parameters()))


def test_bf16_runs_the_transformer_and_text_encoder_in_half_precision_and_keeps_the_tokens(saved, model):
    """The half-precision path a GPU takes (fp16 there), checked on the CPU in bfloat16: the VQModel stays float32,
    so tokens and decoded pixels are the same; logits agree with float32 to bfloat16 accuracy."""
    from memlab.iar.adapters.loading import load_amused
    from memlab.iar.adapters.pipeline_dir import check_pipeline_dir

    half = load_amused(check_pipeline_dir(saved[0]), dtype=torch.bfloat16, generate_steps=4)
    half.set_captions(model.captions)
    assert next(half.uvit.parameters()).dtype == torch.bfloat16 and half.cond_hidden_CxTxD.dtype == torch.bfloat16
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    t, y = model.tokenize(x), torch.tensor([0, 2])
    assert torch.equal(half.tokenize(x), t) and torch.equal(half.decode(t), model.decode(t))
    with torch.no_grad():
        full, low = model.teacher_forced_logits(t, y), half.teacher_forced_logits(t, y).float()
    scored = model.scored_positions()
    err = (low - full)[:, scored].abs().max() / full[:, scored].abs().max()
    assert 0 < err < 0.05, float(err)
    assert half.continue_greedy(t, y, 4).shape == t.shape


def test_fp16_variant_directories_load(saved, tmp_path):
    """A directory saved with variant="fp16" (as the hub's amused-256 fp16 download) holds *.fp16.safetensors."""
    from diffusers import AmusedPipeline

    from memlab.iar.adapters.loading import load_amused
    from memlab.iar.adapters.pipeline_dir import check_pipeline_dir

    AmusedPipeline(**saved[1]).save_pretrained(tmp_path / "pipe16", variant="fp16")
    pdir = check_pipeline_dir(tmp_path / "pipe16")
    assert pdir.variants == {"vqvae": "fp16", "transformer": "fp16", "text_encoder": "fp16"}
    m = load_amused(pdir)
    for a, b in zip(m.uvit.parameters(), saved[1]["transformer"].parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("extra, needle", [
    (["--device", "tpu"], "unknown --device 'tpu'; allowed: auto, cpu, cuda, cuda:N"),
    (["--device", "cpu", "--precision", "fp16"], "--precision fp16 needs a GPU"),
    (["--guidance", "0.5"], "--guidance must be"),
    (["--generate-steps", "0"], "--generate-steps must be an integer >= 1"),
] + ([] if torch.cuda.is_available() else [(["--device", "cuda"], "no CUDA device is available here")]))
def test_bad_device_precision_and_sampling_options_exit_2(saved, tmp_path, capsys, extra, needle):
    run = tmp_path / "run"
    _one_line_error(capsys, main(["iar", "localize", str(run), "--model", f"diffusers:{saved[0]}", "--images",
                                  str(saved[2]), *extra]), needle)
    assert not run.exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_a_gpu_in_fp16_the_commands_run_and_agree_with_the_cpu(saved, model, work, tmp_path):
    """The GPU path (not run in the session that wrote it: no GPU was lent): fp16 transformer and text encoder,
    float32 VQModel; the same tokens as on the CPU, logits within fp16 accuracy; the commands end to end."""
    from memlab.iar.adapters.loading import load_amused
    from memlab.iar.adapters.pipeline_dir import check_pipeline_dir

    gpu = load_amused(check_pipeline_dir(saved[0]), device="cuda", dtype=torch.float16, generate_steps=4)
    gpu.set_captions(model.captions)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    t, y = model.tokenize(x), torch.tensor([0, 1])
    assert torch.equal(gpu.tokenize(x), t) and t.device.type == "cpu"
    with torch.no_grad():
        low = gpu.teacher_forced_logits(t, y)
        full = model.teacher_forced_logits(t, y)
    assert low.device.type == "cpu"
    scored = model.scored_positions()
    assert ((low.float() - full)[:, scored].abs().max() / full[:, scored].abs().max()) < 0.02
    assert torch.equal(gpu.generate(y, [1, 2])[1:], gpu.generate(y[1:], [2]))
    run = tmp_path / "run"
    base = ["--model", f"diffusers:{saved[0]}", "--images", str(saved[2]), "--device", "cuda"]
    assert main(["iar", "localize", str(run), *base]) == 0
    assert main(["iar", "extract", str(run), "--device", "cuda", "--candidates", "4"]) == 0
    assert main(["iar", "ablate", str(run), "--device", "cuda", "--localizer", "integrated-gradients", "--ks", "10",
                 "--factors", "0", "--cloud-ks", "10", "--n-draws", "5", "--n-samples", "8", "--n-boot", "50",
                 "--candidates", "4", "--targets", "img0.png,img1.png"]) == 0
