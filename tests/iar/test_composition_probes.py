"""Linear probes of block hidden states (issue 18, the internal view): block_features reads every block's MLP
units through the interface; the shuffled control sits at chance; a probe reaches a factor that a constructed
model's hidden state holds, and not one it lacks; a constant label keeps the label out; the transfer probe
tells a factorized code from a code per combination."""

import numpy as np
import pandas as pd
import pytest
import torch

from memlab.errors import UsageError
from memlab.iar.analyze.probe_report import probe_figure, probe_summary
from memlab.iar.analyze.probes import (COLUMNS, block_features, internal_view, probe_accuracy, probe_table,
                                       quadrant_groups, reference_features, wilson_interval)
from memlab.iar.config import IARTrainConfig, ImageDataConfig, RunConfig
from memlab.iar.data import to_tensor
from memlab.iar.fake import FakeIAR
from memlab.iar.hooks import capture, n_hooks
from memlab.iar.train import build_model, build_tokenizer

torch.set_num_threads(1)  # tiny ops; threads only contend on a shared CPU

# The control's accuracy is a binomial rate around chance: at N = 240 one standard deviation is <= 0.033 for
# every factor (p <= 0.55), so 0.1 is 3 standard deviations.
CONTROL_TOL = 0.1


def _tiny_real(arch: str):
    """A project model with its own (untrained) tokenizer, images 16 x 16."""
    torch.manual_seed(0)
    cfg = RunConfig(ImageDataConfig(size=16), IARTrainConfig(
        arch=arch, width=16, depth=2, heads=2, mlp_ratio=2, codebook_size=16, latent_channels=4,
        tokenizer_channels=(8, 8, 8)))
    model = build_model(cfg, num_classes=3)
    model.attach_tokenizer(build_tokenizer(cfg).eval())
    return model


def _model(name: str):
    if name.startswith("fake-"):
        return FakeIAR(arch=name[len("fake-"):], side=4, vocab=8, n_classes=3, seed=1)
    return _tiny_real(name)


def _factor_images(n: int, seed: int = 0):
    from synthetic.factors import make_factor_images

    imgs, facts, _ = make_factor_images(n, 16, seed=seed)
    return torch.from_numpy(imgs.transpose(0, 3, 1, 2)).float(), facts


@pytest.mark.parametrize("name", ["raster", "next-scale", "masked", "fake-raster", "fake-next-scale"])
def test_block_features_one_array_per_block_with_the_unit_counts(name):
    model = _model(name).train()
    images, _ = _factor_images(10)
    labels = torch.arange(10) % 3
    feats = block_features(model, images, labels, batch_size=4)
    assert list(feats) == list(model.units())
    for layer, spec in model.units().items():
        assert feats[layer].shape == (10, spec.weight.shape[0])
        assert np.isfinite(feats[layer]).all() and feats[layer].std() > 0
    again = block_features(model, images, labels, batch_size=4)
    assert all(np.array_equal(feats[k], again[k]) for k in feats)  # same input, same numbers
    one_batch = block_features(model, images, labels, batch_size=64)
    assert all(np.allclose(feats[k], one_batch[k], atol=1e-6) for k in feats)  # batch size changes nothing
    assert model.training and n_hooks(model) == 0  # mode restored, hooks removed
    mlp_in = block_features(model, images, labels, batch_size=4, site="mlp_in")
    assert list(mlp_in) == list(model.units())
    for layer, spec in model.units().items():  # the MLP's input: the model width, not the unit count
        assert mlp_in[layer].shape == (10, spec.weight.shape[1]) and mlp_in[layer].std() > 0
        assert not spec.pre_module._forward_pre_hooks


def test_block_features_are_the_position_mean_of_the_captured_units():
    model = FakeIAR(arch="raster", side=4, vocab=8, n_classes=3, seed=2).eval()
    images, _ = _factor_images(6)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    mask_L = torch.arange(model.seq_len) % 3 == 0
    with torch.no_grad(), capture(model) as acts:
        model.teacher_forced_logits(model.tokenize(images), labels)
    feats = block_features(model, images, labels, positions_L=mask_L)
    for layer, act_BxLxU in acts.items():
        np.testing.assert_allclose(feats[layer], act_BxLxU[:, mask_L].double().mean(1).numpy(), atol=1e-6)
    full = block_features(model, images, labels)
    np.testing.assert_allclose(full["block.0.mlp"], acts["block.0.mlp"].double().mean(1).numpy(), atol=1e-6)
    # the fake's first MLP reads the one-hot input (previous token, label, position): its mean is known
    x = block_features(model, images, labels, site="mlp_in")["block.0.mlp"]
    lab0, pos0 = model.vocab_size + 1, model.vocab_size + 1 + model.n_classes
    np.testing.assert_allclose(x[:, lab0:pos0], np.eye(3)[labels.numpy()], atol=1e-12)
    np.testing.assert_allclose(x[:, pos0:], 1 / model.seq_len, atol=1e-12)
    with pytest.raises(UsageError, match="unknown probe site 'resid'; allowed: units, mlp_in"):
        block_features(model, images, labels, site="resid")


def test_control_sits_at_chance_on_real_features():
    images, facts = _factor_images(240)
    feats = block_features(_tiny_real("raster"), images, np.zeros(240, dtype=np.int64))
    for layer, X in feats.items():
        for f in range(facts.shape[1]):
            acc, per_fold, chance = probe_accuracy(X, facts[:, f], seed=0, shuffled=True)
            assert chance == np.bincount(facts[:, f]).max() / 240
            assert abs(acc - chance) <= CONTROL_TOL, (layer, f, acc, chance)
            assert len(per_fold) == 5 and np.isclose(per_fold.mean(), acc, atol=0.01)


def _quadrant_images(n: int, seed: int = 0):
    """8 x 8 images, dark with a bright 4 x 4 square in quadrant q (the factor), grey jitter everywhere."""
    g = torch.Generator().manual_seed(seed)
    q_N = torch.arange(n) % 4
    img = 0.1 + 0.1 * torch.rand(n, 1, 8, 8, generator=g)
    for i, q in enumerate(q_N.tolist()):
        r, c = 4 * (q // 2), 4 * (q % 2)
        img[i, :, r:r + 4, c:c + 4] = 0.8 + 0.2 * torch.rand(1, 4, 4, generator=g)
    return img.expand(-1, 3, -1, -1).contiguous(), q_N.numpy()


def _pixel_detector_model():
    """A FakeIAR (4 x 4 tokens, 8 grey levels) whose block-0 unit i fires (0.5) exactly when token i - 1 is
    bright (>= 4): its hidden state holds where the bright square is. Block 1's units are always 0."""
    model = FakeIAR(arch="raster", side=4, vocab=8, n_classes=2, n_blocks=2, hidden=16, seed=0).eval()
    pos0 = model.vocab_size + 1 + model.n_classes
    with torch.no_grad():
        fc = model.blocks[0].fc
        fc.weight.zero_()
        fc.bias.fill_(-1.5)
        for i in range(1, model.seq_len):
            fc.weight[i, 4:8] = 1.0
            fc.weight[i, pos0 + i] = 1.0
        model.blocks[0].proj.weight.zero_()
        model.blocks[1].fc.weight.zero_()
        model.blocks[1].fc.bias.zero_()
    return model


def test_probe_reaches_a_factor_the_constructed_hidden_state_holds_and_not_one_it_lacks():
    images, q = _quadrant_images(80)
    feats = block_features(_pixel_detector_model(), images, np.zeros(80, dtype=np.int64))
    acc, _, chance = probe_accuracy(feats["block.0.mlp"], q, seed=0)
    assert chance == 0.25 and acc >= 0.95
    control, _, _ = probe_accuracy(feats["block.0.mlp"], q, seed=0, shuffled=True)
    assert abs(control - chance) <= 0.15  # N = 80: one standard deviation ~0.05
    assert np.ptp(feats["block.1.mlp"]) == 0  # constant units: nothing to read
    empty, _, _ = probe_accuracy(feats["block.1.mlp"], q, seed=0)
    assert empty <= chance + 0.05


def test_a_constant_label_keeps_the_label_out_of_the_features():
    """The label is an input: units that read it encode anything the label determines, even of images that
    show nothing of it. The constant-label pass removes that."""
    g = torch.Generator().manual_seed(3)
    images = torch.rand(96, 3, 8, 8, generator=g)  # no factor in the pixels
    y = np.arange(96) % 4
    model = FakeIAR(arch="raster", side=4, vocab=8, n_classes=4, hidden=32, seed=4).eval()
    own = block_features(model, images, y)
    constant = block_features(model, images, np.zeros(96, dtype=np.int64))
    assert probe_accuracy(own["block.0.mlp"], y, seed=0)[0] >= 0.9
    assert probe_accuracy(constant["block.0.mlp"], y, seed=0)[0] <= 0.25 + 0.15


def _codes(shape_N, colour_N, kind: str, noise_seed: int):
    """Features of (shape, colour) pairs, one code book for every call plus seeded noise: 'factorized' = a shape
    vector + a colour vector, 'combination' = one random vector per pair (a lookup a probe can learn per
    combination, but not carry to a new one)."""
    rng = np.random.default_rng(7)
    S, C, D = 6, 6, 24
    shape_v, colour_v, combo_v = rng.normal(size=(S, D)), rng.normal(size=(C, D)), rng.normal(size=(S * C, D))
    base = shape_v[shape_N] + colour_v[colour_N] if kind == "factorized" else combo_v[shape_N * C + colour_N]
    return base + 0.3 * np.random.default_rng(noise_seed).normal(size=base.shape)


def test_transfer_probe_tells_a_factorized_code_from_a_code_per_combination():
    rng = np.random.default_rng(0)
    held = {(s, (s + k) % 6) for s in range(6) for k in (0, 3)}  # 12 of 36 pairs, every shape and colour kept
    pairs = [(s, c) for s in range(6) for c in range(6)]
    trained, novel = [p for p in pairs if p not in held], sorted(held)
    tr = np.array([trained[i] for i in rng.integers(0, len(trained), 360)])
    nv = np.array([novel[i] for i in rng.integers(0, len(novel), 120)])
    F_tr = np.column_stack([tr, rng.integers(0, 2, len(tr))])  # shape, colour, and a factor no code holds
    F_nv = np.column_stack([nv, rng.integers(0, 2, len(nv))])
    names = ("shape", "colour", "noise")
    accs = {}
    for kind in ("factorized", "combination"):
        feats = {"block.0.mlp": _codes(tr[:, 0], tr[:, 1], kind, 1)}
        novel_feats = {"block.0.mlp": _codes(nv[:, 0], nv[:, 1], kind, 2)}
        t = probe_table(feats, F_tr, names, folds=5, seed=0, transfer={"novel": (novel_feats, F_nv)}, labels="own")
        assert list(t.columns) == COLUMNS and len(t) == 3 * 2 * 2 and set(t["labels"]) == {"own"}
        assert set(t.split) == {"train", "train->novel"} and set(t.probe) == {"real", "control"}
        assert (t.lo <= t.accuracy).all() and (t.accuracy <= t.hi).all()
        cv, tf = t[t.split == "train"], t[t.split == "train->novel"]
        assert (cv.n == 360).all() and (tf.n == 120).all()
        np.testing.assert_allclose(tf[tf.factor == "shape"].chance, np.bincount(nv[:, 0]).max() / 120)
        accs[kind] = t.set_index(["split", "factor", "probe"]).accuracy
        assert t.equals(probe_table(feats, F_tr, names, folds=5, seed=0, transfer={"novel": (novel_feats, F_nv)},
                                    labels="own"))  # same seed, same numbers
    for kind in accs:  # both codes hold shape and colour on trained combinations; neither holds the noise
        for factor in ("shape", "colour"):
            assert accs[kind]["train", factor, "real"] >= 0.9
            assert abs(accs[kind]["train", factor, "control"] - 1 / 6) <= 0.1
        assert accs[kind]["train", "noise", "real"] <= 0.65
    assert accs["factorized"]["train->novel", "shape", "real"] >= 0.9  # composes: carries to new pairs
    assert accs["combination"]["train->novel", "shape", "real"] <= 0.5  # a lookup per pair: does not


def test_wilson_interval_matches_the_closed_form():
    lo, hi = wilson_interval(8, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)  # Wilson 95% of 8/10 (z = 1.96)
    lo0, hi0 = wilson_interval(0, 20)
    assert lo0 == pytest.approx(0.0, abs=1e-12) and 0.15 < hi0 < 0.17


def test_internal_view_of_a_factors_set_has_every_split_and_label_pass(tmp_path):
    from synthetic.images import load_image_set

    s = load_image_set("factors", size=16, n_train=48, n_heldout=16, seed=0, heldout_share=0.25, arbitrary=0.3,
                       duplicates=3, n_duplicated=4)
    assert len(s.train_ids) == 48 + 8  # planted copies, which the probes must drop
    model = FakeIAR(arch="raster", side=4, vocab=8, n_classes=len(s.class_names), n_blocks=1, seed=0)  # one block: fast
    t = internal_view(model, s, folds=2, seed=0, reference_side=4)
    assert set(t["labels"]) == {"own", "constant", "none"} and set(t.site) == {"units", "reference"}
    refs = t[t.site == "reference"]
    assert set(refs.pool) == {""} and set(t[t.site == "units"].pool) == {"mean"}
    assert set(refs["labels"]) == {"none"} and set(zip(refs.block, refs.block_index)) == {
        ("pixels", -2), ("reconstruction", -1)}
    assert set(t.split) == {"train", "arbitrary", "novel", "train->heldout", "train->novel"}
    assert (t[t.split == "train"].n == 48).all()
    assert (t[t.split == "arbitrary"].n == int(round(0.3 * 48))).all()
    assert (t[t.split.isin(["novel", "train->novel"])].n == len(s.factors.novel_ids)).all()
    assert (t[t.split == "train->heldout"].n == len(s.heldout_ids)).all()
    assert len(t[(t.split == "train") & (t["labels"] == "own")]) == 1 * 4 * 2  # blocks x factors x probes
    summary = probe_summary(t)
    assert len(summary) == len(t.groupby(["site", "labels", "split", "factor"]))
    assert all(r["accuracy"] >= r["lo"] and r["block"] in [*model.units(), "pixels", "reconstruction"]
               for r in summary)
    capped = internal_view(model, s, folds=2, seed=0, max_images=40, label_passes=("constant",), sites=("mlp_in",),
                           references=False)
    assert set(capped["labels"]) == {"constant"} and set(capped.site) == {"mlp_in"}
    assert (capped[capped.split == "train"].n == 40).all() and len(capped) == len(t[t["labels"] == "own"])


def test_bad_input_names_the_problem():
    model = FakeIAR(arch="raster", side=4, vocab=8, n_classes=3, seed=0)
    images, facts = _factor_images(8)
    with pytest.raises(UsageError, match="N labels"):
        block_features(model, images, np.zeros(7, dtype=np.int64))
    with pytest.raises(UsageError, match="positions_L"):
        block_features(model, images, np.zeros(8, dtype=np.int64), positions_L=torch.zeros(model.seq_len, dtype=bool))
    X = np.random.default_rng(0).normal(size=(8, 4))
    with pytest.raises(UsageError, match="folds must be an integer >= 2"):
        probe_accuracy(X, np.arange(8) % 2, folds=1)
    with pytest.raises(UsageError, match="at least 2 factor values"):
        probe_accuracy(X, np.zeros(8))
    with pytest.raises(UsageError, match="N x 4"):
        probe_table({"block.0.mlp": X}, facts[:, :3], ("shape", "colour", "position", "size"))
    with pytest.raises(UsageError, match="transfer set 'novel' needs features of the blocks block.0.mlp"):
        probe_table({"block.0.mlp": X}, facts, ("shape", "colour", "position", "size"),
                    transfer={"novel": ({"block.1.mlp": X}, facts)})
    from synthetic.images import load_image_set

    shapes = load_image_set("shapes", size=16, n_train=8, n_heldout=4)
    with pytest.raises(UsageError, match="factors image set"):
        internal_view(model, shapes)
    factors = load_image_set("factors", size=16, n_train=16, n_heldout=4)
    with pytest.raises(UsageError, match="unknown label pass 'null'; allowed: own, constant"):
        internal_view(model, factors, label_passes=("null",))
    with pytest.raises(UsageError, match="constant_label"):
        internal_view(model, factors, constant_label=len(factors.class_names))


@pytest.mark.slow
def test_internal_view_of_a_tiny_trained_run(tmp_path):
    """Through a real run directory: a tiny raster model trained on factors with held-out combinations. Position
    (in no label) is read above the control from the constant-label pass; with its own labels, the model's units
    give shape away (the label determines it) far better than without."""
    from memlab.iar.data import load_images
    from memlab.iar.load import load_run, read_run_config
    from memlab.iar.train import train_run

    cfg = RunConfig(ImageDataConfig(data="factors", n_train=128, n_heldout=32, heldout_share=0.25),
                    IARTrainConfig(arch="raster", epochs=12, tokenizer_epochs=8, batch_size=16, lr=5e-3, width=32,
                                   depth=2, heads=2, mlp_ratio=4, codebook_size=32, latent_channels=8,
                                   tokenizer_channels=(8, 16, 16)))
    train_run(cfg, tmp_path / "run", progress=False, figures=False)
    model, s = load_run(tmp_path / "run"), load_images(read_run_config(tmp_path / "run").data)
    t = internal_view(model, s, folds=4, seed=0)
    best = {(r["labels"], r["split"], r["factor"]): r for r in probe_summary(t)}
    # measured at this size: position 0.64 (control 0.24, n = 128); size 0.61 against 0.51, whose intervals overlap
    assert best["constant", "train", "position"]["above_control"], best["constant", "train", "position"]
    assert best["own", "train", "shape"]["accuracy"] >= best["constant", "train", "shape"]["accuracy"] + 0.3
    assert set(t.split) == {"train", "novel", "train->heldout", "train->novel"}


def test_transfer_by_combination_splits_the_transfer_probe_and_counts_the_trained_contexts():
    from memlab.iar.analyze.probe_combos import COLUMNS as COMBO_COLUMNS
    from memlab.iar.analyze.probe_combos import transfer_by_combination
    from synthetic.images import load_image_set

    held = ("square:red", "square:yellow", "square:green", "circle:blue")  # squares: trained in blue only
    s = load_image_set("factors", size=16, n_train=48, n_heldout=24, seed=0, heldout_combos=held)
    model = FakeIAR(arch="raster", side=4, vocab=8, n_classes=len(s.class_names), n_blocks=1, seed=0)
    by = transfer_by_combination(model, s, labels="constant")
    assert list(by.columns) == COMBO_COLUMNS and set(by.combo) == set(held)
    ctx = by.drop_duplicates("combo").set_index("combo")
    assert (ctx.loc[["square:red", "square:yellow", "square:green"], "shape_colours_trained"] == 1).all()
    assert ctx.loc["circle:blue", "shape_colours_trained"] == 3
    assert ctx.loc["square:red", "colour_shapes_trained"] == 4 and ctx.loc["circle:blue", "colour_shapes_trained"] == 4
    assert (by.lo <= by.accuracy).all() and (by.accuracy <= by.hi).all()
    # the same probe as the table's train->novel row: its correct predictions, summed over combinations
    t = probe_table(block_features(model, to_tensor(s.train_NxHxWx3), np.zeros(48, dtype=np.int64)),
                    s.factors.train_NxF, s.factors.names,
                    transfer={"novel": (block_features(model, to_tensor(s.factors.novel_NxHxWx3),
                                                       np.zeros(len(s.factors.novel_ids), dtype=np.int64)),
                                        s.factors.novel_NxF)}, folds=2)
    real = t[(t.split == "train->novel") & (t.probe == "real")].set_index("factor")
    for factor, g in by.groupby("factor"):
        assert g.n.sum() == len(s.factors.novel_ids) == real.loc[factor, "n"]
        assert np.isclose((g.accuracy * g.n).sum() / g.n.sum(), real.loc[factor, "accuracy"])
    with pytest.raises(UsageError, match="label pass must be one of own, constant"):
        transfer_by_combination(model, s, labels="null")


def test_reference_features_are_the_pooled_pixels_and_what_the_tokens_show():
    model = FakeIAR(arch="raster", side=4, vocab=8, n_classes=3, seed=0)
    images, _ = _factor_images(5)
    ref = reference_features(model, images, batch_size=2, side=8)
    assert list(ref) == ["pixels", "reconstruction"] and ref["pixels"].shape == ref["reconstruction"].shape == (5, 192)
    np.testing.assert_allclose(ref["pixels"], torch.nn.functional.avg_pool2d(images, 2).flatten(1).numpy(), atol=1e-6)
    grey_4x4 = model.decode(model.tokenize(images))[:, 0]  # the fake's reconstruction: grey levels on its 4 x 4 grid
    np.testing.assert_allclose(ref["reconstruction"][:, :64].reshape(5, 8, 8),
                               grey_4x4.repeat_interleave(2, 1).repeat_interleave(2, 2).numpy(), atol=1e-6)


def test_probe_figure_has_a_row_per_site_and_label_pass_and_the_references_left(tmp_path):
    rng = np.random.default_rng(0)
    F = np.column_stack([np.arange(40) % 2, np.arange(40) % 4])
    names = ("size", "position")

    def table(blocks, **kw):
        return probe_table({b: rng.normal(size=(40, 3)) for b in blocks}, F, names, folds=2, **kw)
    refs = table(["pixels", "reconstruction"], labels="none", site="reference")
    refs["block_index"] -= 2
    t = pd.concat([refs, table(["block.0.mlp", "block.1.mlp"], labels="own", site="units"),
                   table(["block.0.mlp", "block.1.mlp"], labels="constant", site="units"),
                   table(["block.0.mlp", "block.1.mlp"], labels="constant", site="mlp_in")])
    fig = probe_figure(t)
    assert len(fig.axes) == 3 * 2  # (units, own), (units, constant), (mlp_in, constant) x 2 factors
    ax = fig.axes[0]
    assert [x.get_text() for x in ax.get_xticklabels()] == ["pixels", "recon", "0", "1"]
    assert ax.get_title() == "size (units, labels own)"
    fig.savefig(tmp_path / "probes.png")
    assert (tmp_path / "probes.png").stat().st_size > 0


def test_quadrant_groups_split_each_token_map_row_major():
    raster = quadrant_groups(FakeIAR(arch="raster", side=4, vocab=8, n_classes=2))
    assert len(raster) == 4 and torch.stack(raster).sum(0).eq(1).all()  # a partition of the 16 positions
    assert torch.nonzero(raster[0]).flatten().tolist() == [0, 1, 4, 5]  # top-left of the 4 x 4 map
    assert torch.nonzero(raster[3]).flatten().tolist() == [10, 11, 14, 15]
    nested = quadrant_groups(FakeIAR(arch="next-scale", side=4, vocab=8, n_classes=2))  # maps 1, 2, 4
    assert len(nested) == 1 + 4 + 4 and torch.stack(nested).sum(0).eq(1).all()


def test_mean_pooling_hides_where_a_unit_fires_and_quadrant_pooling_keeps_it():
    """One unit that fires on every bright token, wherever it is: its mean over positions counts the bright
    tokens (one in every image), its quadrant means say where it is."""
    g = torch.Generator().manual_seed(1)
    q = np.arange(80) % 4
    images = 0.1 + 0.1 * torch.rand(80, 1, 8, 8, generator=g)
    for i, qi in enumerate(q):  # one bright token (2 x 2 pixels): the top-left token of quadrant qi
        r, c = 4 * (qi // 2), 4 * (qi % 2)
        images[i, :, r:r + 2, c:c + 2] = 0.9
    images = images.expand(-1, 3, -1, -1).contiguous()
    model = FakeIAR(arch="raster", side=4, vocab=8, n_classes=2, n_blocks=1, hidden=4, seed=0).eval()
    with torch.no_grad():
        fc = model.blocks[0].fc
        fc.weight.zero_()
        fc.bias.fill_(-1.0)  # units 1..3 never fire
        fc.weight[0, 4:8] = 1.0  # previous token bright
        fc.bias[0] = -0.5
    labels = np.zeros(80, dtype=np.int64)
    mean = block_features(model, images, labels)["block.0.mlp"]
    quads = block_features(model, images, labels, pool="quadrants")["block.0.mlp"]
    assert mean.shape == (80, 4) and quads.shape == (80, 16)
    with torch.no_grad(), capture(model) as acts:
        model.teacher_forced_logits(model.tokenize(images), torch.zeros(80, dtype=torch.long))
    groups = quadrant_groups(model)
    manual = torch.cat([acts["block.0.mlp"][:, g].double().mean(1) for g in groups], 1).numpy()
    np.testing.assert_allclose(quads, manual, atol=1e-9)
    assert np.ptp(mean[:, 0]) == 0  # the same for every image
    assert probe_accuracy(mean, q, seed=0)[0] <= 0.25 + 0.05
    assert probe_accuracy(quads, q, seed=0)[0] == 1.0
    with pytest.raises(UsageError, match="pool must be one of mean, quadrants"):
        block_features(model, images, labels, pool="max")
