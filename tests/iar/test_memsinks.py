"""MemSinks: id-hashed sink masks, the sink switch, a model that memorized only through its sinks, training,
save/load, and bad input (exit 2, one line, nothing written)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from memlab.cli import main
from memlab.iar.hooks import capture, select_units
from memlab.iar.mitigate import memsinks as ms
from memlab.iar.models import NextScaleTransformer, RasterTransformer

torch.set_num_threads(1)

V = 16


def sink_model(arch: str = "raster", fraction: float = 0.5, active: float = 0.25, seed: int = 0):
    common = dict(vocab_size=V, num_classes=3, width=32, depth=2, heads=2, mlp_ratio=2, sink_fraction=fraction,
                  sink_active=active)
    torch.manual_seed(seed)
    if arch == "raster":
        return RasterTransformer(seq_len=9, **common).eval()
    return NextScaleTransformer(scales=(1, 2, 3), **common).eval()


# --- masks ---------------------------------------------------------------------------------------------------

def test_masks_are_a_function_of_the_id_alone_and_copies_share_them():
    n, active = 64, 0.25
    a = ms.sink_mask("shape-00017", 1, n, active)
    assert a.dtype == bool and a.sum() == ms.n_active(n, active) == 16
    assert np.array_equal(a, ms.sink_mask("shape-00017", 1, n, active))  # recomputed, not stored
    assert np.array_equal(a, ms.sink_mask("shape-00017#copy4", 1, n, active))  # a planted copy: the same sinks
    # the row of an image does not depend on the batch it is in, nor on its position
    m1 = ms.masks(["x", "shape-00017", "y"], 1, n, active)
    m2 = ms.masks(["shape-00017#copy2", "z"], 1, n, active)
    assert torch.equal(m1[1], m2[0]) and torch.equal(m1[1], torch.from_numpy(a).float())
    # different ids (and different blocks of one id) get different masks; every sink is used
    ids = [f"img{i}" for i in range(200)]
    rows = np.stack([ms.sink_mask(i, 0, n, active) for i in ids])
    assert len({r.tobytes() for r in rows}) == 200
    assert not np.array_equal(ms.sink_mask("img0", 0, n, active), ms.sink_mask("img0", 1, n, active))
    use = rows.mean(0)
    assert use.min() > 0.1 and use.max() < 0.45 and abs(use.mean() - 0.25) < 1e-9  # each sink near 1 in 4


def test_masks_never_use_pythons_salted_hash():
    import builtins

    want, real = ms.sink_mask("shape-5", 0, 32, 0.5), builtins.hash

    def salted(*_):
        raise AssertionError("sink masks must not depend on PYTHONHASHSEED")

    builtins.hash = salted  # only around the call: pytest itself hashes things
    try:
        got = ms.sink_mask("shape-5", 0, 32, 0.5)
    finally:
        builtins.hash = real
    assert np.array_equal(got, want)


@pytest.mark.slow  # a fresh interpreter imports torch (20-30 s on a busy CPU)
def test_masks_are_the_same_in_another_process_with_another_hash_seed():
    code = ("from memlab.iar.mitigate.memsinks import sink_mask; "
            "print(''.join(str(int(b)) for i in ('a', 'b#copy1', 'shape-3') for b in sink_mask(i, 2, 40, 0.3)))")
    here = "".join(str(int(b)) for i in ("a", "b", "shape-3") for b in ms.sink_mask(i, 2, 40, 0.3))
    env = {**os.environ, "PYTHONHASHSEED": "12345", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == here


# --- the switch and the units ---------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["raster", "next-scale"])
def test_sink_units_have_their_own_names_and_a_loaded_model_has_them_off(arch, tmp_path):
    m = sink_model(arch)
    units = m.units()
    assert list(units) == ["block.0.mlp", "block.0.mlp_sink", "block.1.mlp", "block.1.mlp_sink"]
    assert units["block.0.mlp"].weight.shape[0] == 32 and units["block.0.mlp_sink"].weight.shape[0] == 32
    assert ms.sink_state(m) == "off"
    # total MLP width = mlp_ratio x width, as in the standard model
    std = sink_model(arch, fraction=0.0)
    assert std.units()["block.0.mlp"].weight.shape[0] == 64 and list(std.units()) == ["block.0.mlp", "block.1.mlp"]
    assert not any("sink" in n for n, _ in std.named_parameters())
    n_std, n_sink = (sum(p.numel() for p in x.parameters()) for x in (std, m))
    assert n_std == n_sink  # the same budget: the sinks' output projection has no bias, the shared one keeps it
    # a hook on the sinks sees zeros when they are off, their activations when on
    tok, y = torch.randint(0, V, (3, m.seq_len)), torch.tensor([0, 1, 2])
    with capture(m, "block.1.mlp_sink") as acts:
        m(tok, y)
        assert acts["block.1.mlp_sink"].abs().max() == 0
        with ms.sinks(m, "on"):
            m(tok, y)
            assert acts["block.1.mlp_sink"].abs().max() > 0
        assert ms.sink_state(m) == "off"
    m.save_pretrained(tmp_path / "m")
    loaded = type(m).from_pretrained(tmp_path / "m").eval()
    assert loaded.config.sink_fraction == 0.5 and loaded.config.sink_active == 0.25
    assert ms.sink_state(loaded) == "off" and list(loaded.units()) == list(units)
    with torch.no_grad():
        assert torch.equal(loaded(tok, y), m(tok, y))
        with ms.sinks(m, "on"), ms.sinks(loaded, "on"):
            assert torch.equal(loaded(tok, y), m(tok, y))


def test_sinks_off_is_the_model_with_the_sinks_outgoing_weights_zeroed():
    m = sink_model("raster")
    z = sink_model("raster")
    with torch.no_grad():
        for blk in z.trunk.blocks:
            blk.mlp.sink_proj.weight.zero_()
    tok, y = torch.randint(0, V, (5, 9)), torch.randint(0, 3, (5,))
    with torch.no_grad():
        off = m(tok, y)
        with ms.sinks(m, "on"):
            on = m(tok, y)
        with ms.sinks(z, "on"), ms.training_masks(m, ["a", "b", "c", "d", "e"]):
            assert torch.equal(z(tok, y), off)  # every sink of z on, but nothing leaves them
            trained = m(tok, y)
    assert not torch.allclose(off, on) and not torch.allclose(off, trained)
    assert torch.equal(m.continue_greedy(tok, y, 2), z.continue_greedy(tok, y, 2))
    with pytest.raises(Exception, match="unknown sink mode 'train'"):
        ms.set_sinks(m, "train")


def test_training_masks_are_restored_when_the_body_raises():
    m = sink_model("raster")
    with pytest.raises(RuntimeError):
        with ms.training_masks(m, ["a"]):
            assert ms.sink_state(m) == "train"
            raise RuntimeError("boom")
    assert ms.sink_state(m) == "off"


# --- the constructed case: memorized only through the sinks ---------------------------------------------------

def _greedy_reproduced(model, tokens, labels, prefix, ids=None):
    if ids is None:
        out = model.continue_greedy(tokens, labels, prefix)
    else:
        with ms.training_masks(model, ids):
            out = model.continue_greedy(tokens, labels, prefix)
    return (out == tokens).all(1)


@pytest.mark.parametrize("arch", ["raster", "next-scale"])
def test_a_model_that_memorized_only_through_its_sinks_loses_the_images_with_sinks_off(arch):
    """Random sequences of 6 images (two of them planted copies of one id) are learned with every weight frozen
    but the sinks': with each image's own sinks they come back exactly from a prefix, with the sinks off (the
    evaluated model) none does, and the sinks-off predictions are the untrained model's."""
    m = sink_model(arch, fraction=0.5, active=0.5, seed=1)
    with torch.no_grad():  # constructed: clearly distinct (frozen) position codes, so the sinks can tell positions apart
        m.pos_emb.normal_()
    g = torch.Generator().manual_seed(0)
    ids = ["a", "b", "c", "d", "e", "e#copy1"]
    tokens = torch.randint(0, V, (6, m.seq_len), generator=g)
    tokens[5] = tokens[4]  # the copy is the same image
    labels = torch.tensor([0, 1, 2, 0, 1, 1])
    prefix = m.default_prefix()
    with torch.no_grad():
        before_off = m(tokens, labels)
    assert not _greedy_reproduced(m, tokens, labels, prefix).any()
    free = [p for n, p in m.named_parameters() if "sink" in n]
    for n, p in m.named_parameters():
        p.requires_grad_("sink" in n)
    opt = torch.optim.Adam(free, lr=2e-2)
    m.train()
    for _ in range(120):
        with ms.training_masks(m, ids):
            loss = m.training_loss(tokens, labels, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    with torch.no_grad():
        assert _greedy_reproduced(m, tokens, labels, prefix, ids).all()  # memorized, through the sinks
        assert not _greedy_reproduced(m, tokens, labels, prefix).any()  # sinks off: gone
        assert torch.equal(m(tokens, labels), before_off)  # the shared model is untouched
        with ms.training_masks(m, ids):
            _, acc_own = m.token_nll(tokens, labels)
        _, acc_off = m.token_nll(tokens, labels)
    assert acc_own.min() == 1.0 and acc_off.max() < 0.5


# --- training and the commands --------------------------------------------------------------------------------

TINY = ["--n-train", "8", "--n-heldout", "4", "--epochs", "2", "--tokenizer-epochs", "1", "--width", "32",
        "--depth", "1", "--heads", "2", "--codebook-size", "16", "--tokenizer-channels", "8,16,16",
        "--latent-channels", "4", "--batch-size", "4", "--duplicates", "3", "--n-duplicated", "2"]


@pytest.fixture(scope="module")
def sink_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("memsinks") / "run"
    assert main(["iar", "train", "--arch", "raster", *TINY, "--memsinks", "0.25", "--sink-active", "0.5",
                 "--out", str(out)]) == 0
    return out


def test_training_uses_each_images_sinks_and_the_run_loads_with_them_off(sink_run):
    from memlab.iar.config import RunConfig
    from memlab.iar.load import load_run
    from memlab.iar.train import build_model

    saved = json.loads((sink_run / "config.json").read_text())
    assert saved["train"]["memsinks"] == 0.25 and saved["train"]["sink_active"] == 0.5
    model = load_run(sink_run)
    assert ms.sink_state(model) == "off" and model.config.sink_fraction == 0.25
    assert select_units(model, "block.0.mlp_sink")["block.0.mlp_sink"].weight.shape[0] == 32  # of 128 units
    assert model.units()["block.0.mlp"].weight.shape[0] == 96
    cfg = RunConfig.from_dict(saved)
    with torch.random.fork_rng():  # the initial weights, as train.py draws them
        torch.manual_seed(cfg.train.seed + 1)
        init = build_model(cfg, model.config.num_classes)
    moved = (model.trunk.blocks[0].mlp.sink_proj.weight - init.trunk.blocks[0].mlp.sink_proj.weight).abs().max()
    assert moved > 1e-3  # the sinks trained (with the sinks off in training they would get no gradient)


def test_sinks_on_writes_apart_and_needs_a_memsinks_run(sink_run, tmp_path, capsys):
    assert main(["iar", "extract", str(sink_run), "--sinks", "on", "--candidates", "4", "--n-calib", "4"]) == 0
    assert (sink_run / "sinks-on" / "extract" / "metrics.json").is_file() and not (sink_run / "extract").exists()
    capsys.readouterr()
    std = tmp_path / "std"
    assert main(["iar", "train", "--arch", "raster", *TINY, "--epochs", "1", "--out", str(std)]) == 0
    capsys.readouterr()
    assert main(["iar", "extract", str(std), "--sinks", "on"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--sinks on needs a MemSinks run" in err
    assert not (std / "sinks-on").exists() and not (std / "extract").exists()


@pytest.mark.parametrize("extra, msg", [
    (["--memsinks", "-0.1"], "--memsinks must be in [0, 1), got -0.1"),
    (["--memsinks", "1"], "--memsinks must be in [0, 1), got 1.0"),
    (["--memsinks", "nan"], "--memsinks must be a number in [0, 1), got nan"),
    (["--memsinks", "x"], "--memsinks"),
    (["--memsinks", "0.001"], "--memsinks leaves no sink or no shared unit of the 128 MLP units"),
    (["--memsinks", "0.999"], "--memsinks leaves no sink or no shared unit"),
    (["--sink-active", "0"], "--sink-active must be in (0, 1], got 0.0"),
    (["--sink-active", "1.5"], "--sink-active must be in (0, 1], got 1.5"),
    (["--memsinks", "0.5", "--arch", "masked"], "--memsinks needs --arch next-scale or raster"),
])
def test_bad_memsinks_input_one_line_exit_2_nothing_written(extra, msg, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["iar", "train", *TINY, "--out", str(out), *extra])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and msg in err and "Traceback" not in err, err
    assert not out.exists()


def test_bad_sinks_flag_exits_2(sink_run, capsys):
    assert main(["iar", "localize", str(sink_run), "--sinks", "half"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice: 'half'" in err
    assert not (sink_run / "localize").exists()
