"""Issue 18's output view: per-factor classifiers (accurate on real images, stored and reused), rates of the
requested factors in class-conditional samples (one row per combination, held-out flags of the image set,
deterministic), their known values on constructed models, and the arbitrary-label extraction split."""

import json

import numpy as np
import pytest
import torch

from memlab.errors import UsageError
from memlab.iar.analyze import factor_output as fo
from memlab.iar.classifier import ClassifierConfig
from memlab.iar.config import ExtractConfig, ImageDataConfig
from memlab.iar.data import load_images, to_tensor
from memlab.iar.factor_classifier import DIRNAME, META, ensure_factor_classifiers, train_factor_classifiers
from memlab.iar.fake import FakeIAR
from synthetic.factors import COLOURS, N_COMBOS, SHAPES, combo_label, make_factor_images

torch.set_num_threads(1)

HELD = ("circle:green", "square:blue", "ring:red")
DATA = ImageDataConfig(data="factors", size=16, n_train=96, n_heldout=64, heldout_combos=HELD,
                       arbitrary_labels=0.3, arbitrary_classes=4)
FAST = ClassifierConfig(steps=150, batch_size=32, width=8, n_fresh=1024)  # about 8 s for the four on one core


@pytest.fixture(scope="module")
def image_set():
    return load_images(DATA)


@pytest.fixture(scope="module")
def stored(tmp_path_factory, image_set):
    run = tmp_path_factory.mktemp("run")
    return run, ensure_factor_classifiers(run, DATA, FAST, image_set)


class Bank:
    """A stand-in IAR model: generate(label) returns a token that indexes a real image of that combination
    (of `fixed` whatever the label, when given); decode looks it up."""

    arch = "bank"

    def __init__(self, size=16, n=400, fixed=None):
        imgs, self.f_NxF, _ = make_factor_images(n, size, seed=77)
        self.images = to_tensor(imgs)
        self.combo_N = combo_label(self.f_NxF[:, 0], self.f_NxF[:, 1])
        self.fixed = fixed

    def eval(self):
        return self

    def generate(self, labels_B, seeds):
        rows = []
        for label, seed in zip(labels_B.tolist(), seeds):
            pool = np.flatnonzero(self.combo_N == (label if self.fixed is None else self.fixed))
            rows.append(pool[seed % len(pool)])
        return torch.tensor(rows)[:, None]

    def decode(self, tokens_Bx1):
        return self.images[tokens_Bx1[:, 0]]


class Upsampled(FakeIAR):
    """A FakeIAR of 4 x 4 tokens whose decoded images are blown up to the image set's 16 x 16 (cheap samples)."""

    def decode(self, tokens_BxL):
        return torch.nn.functional.interpolate(super().decode(tokens_BxL), size=16, mode="nearest")


class Oracle:
    """Factor 'classifiers' that know the bank's images: exact factors, so rates are exact."""

    def __init__(self, bank):
        self.bank = bank

    def read(self, images_Bx3xHxW):
        d = torch.cdist(images_Bx3xHxW.flatten(1), self.bank.images.flatten(1))
        return self.bank.f_NxF[d.argmin(1).numpy()], np.ones((len(images_Bx3xHxW), 4))


def test_classifiers_are_accurate_on_real_images_stored_and_reused(stored, image_set):
    run, clfs = stored
    acc = clfs.info["accuracy"]
    assert clfs.info["status"] == "trained" and clfs.info["trained_on"]["source"] == "fresh"
    assert clfs.info["trained_on"]["seed"] != DATA.seed
    for split in ("fresh_test", "run_heldout", "run_novel"):
        assert acc[split]["n"] > 0
        assert acc[split]["colour"] >= 0.95  # measured: 1.0 on all three at 16 x 16 after 100 steps
        assert acc[split]["size"] >= 0.8 and acc[split]["position"] >= 0.8  # measured 0.93-1.0
        assert acc[split]["shape"] > 1 / len(SHAPES)  # 100 steps is short for shape (see the slow test)
    assert acc["run_novel"]["n"] == len(image_set.factors.novel_labels)
    again = ensure_factor_classifiers(run, DATA, FAST, image_set)
    assert again.info["status"] == "loaded" and again.info["accuracy"] == acc
    x = to_tensor(image_set.heldout_NxHxWx3)
    assert np.array_equal(again.predict(x), clfs.predict(x))


@pytest.mark.slow
def test_longer_training_names_every_factor_at_16_pixels(image_set):
    clfs = train_factor_classifiers(DATA, ClassifierConfig(steps=600, n_fresh=4096), image_set)  # about 80 s
    for split in ("fresh_test", "run_heldout", "run_novel"):
        # measured: shape 0.95-0.98, colour 1.0, position 0.96-0.98, size 0.98-1.0
        assert all(clfs.info["accuracy"][split][f] >= 0.94 for f in ("shape", "colour", "position", "size"))


def test_classifiers_retrain_on_another_config_and_name_damage(stored, tmp_path, image_set):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(stored[0], run)
    (run / DIRNAME / "colour.safetensors").write_bytes(b"garbage")
    with pytest.raises(UsageError, match="colour.safetensors"):
        ensure_factor_classifiers(run, DATA, FAST, image_set)
    (run / DIRNAME / META).write_text(json.dumps([1]))
    with pytest.raises(UsageError, match="fingerprint"):
        ensure_factor_classifiers(run, DATA, FAST, image_set)
    with pytest.raises(UsageError, match="--data factors"):
        ensure_factor_classifiers(tmp_path, ImageDataConfig(size=16), FAST)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing written for a shapes run


def test_classifiers_learn_the_tokenizers_reconstructions_too(tmp_path, image_set):
    tiny = ClassifierConfig(steps=5, width=4, n_fresh=64)  # accuracy is not the point here
    plain = ensure_factor_classifiers(tmp_path, DATA, tiny, image_set)
    a = ensure_factor_classifiers(tmp_path, DATA, tiny, image_set, reconstruct_with=Upsampled(side=4, vocab=8))
    assert a.info["status"].startswith("retrained") and a.info["fingerprint"] != plain.info["fingerprint"]
    assert a.info["trained_on"]["reconstructed"] and a.info["accuracy"]["fit"]["n"] == 2 * tiny.n_fresh
    assert {"fresh_test_reconstructed", "run_heldout_reconstructed", "run_novel_reconstructed"} <= set(
        a.info["accuracy"])
    same = ensure_factor_classifiers(tmp_path, DATA, tiny, image_set, reconstruct_with=Upsampled(side=4, vocab=8,
                                                                                                 seed=9))
    assert same.info["status"] == "loaded"  # same tokenizer (the network differs): reused
    other = ensure_factor_classifiers(tmp_path, DATA, tiny, image_set, reconstruct_with=Upsampled(side=4, vocab=4))
    assert other.info["status"].startswith("retrained")


def test_rates_table_one_row_per_combination_deterministic(stored, image_set):
    model = Upsampled(side=4, vocab=8, n_classes=N_COMBOS + 4, seed=3).eval()
    clfs = stored[1]
    a = fo.output_rates(model, image_set, clfs, samples_per_class=3, seed=5, batch_size=32)
    assert list(a["label"]) == list(range(N_COMBOS)) and (a["n"] == 3).all()
    assert set(a.loc[a["heldout"], "combo"]) == set(HELD)
    assert {(SHAPES.index(s), COLOURS.index(c)) for s, c in a.loc[a["heldout"], ["shape", "colour"]].to_numpy()} \
        == set(image_set.factors.heldout_combos)
    rates = a[[f"{m}_rate" for m in fo.MEASURES]].to_numpy()
    assert ((rates >= 0) & (rates <= 1)).all()
    assert (a["both_rate"] <= np.minimum(a["shape_rate"], a["colour_rate"])).all()
    b = fo.output_rates(model, image_set, clfs, samples_per_class=3, seed=5, batch_size=7)
    assert a.equals(b)  # same seed, other batching: the same table
    s1 = fo.draw_samples(model, [2, 3], samples_per_class=2, seed=5)
    s2 = fo.draw_samples(model, [3], samples_per_class=2, seed=5)
    assert torch.equal(s1.images_Sx3xHxW[2:], s2.images_Sx3xHxW)  # a sample depends on its class and seed only
    c = fo.output_rates(model, image_set, clfs, samples_per_class=3, seed=5, samples=fo.draw_samples(
        model, range(N_COMBOS), samples_per_class=3, seed=5))
    assert a.equals(c)


def test_constructed_models_give_the_known_rates(image_set):
    bank = Bank()
    exact = fo.output_rates(bank, image_set, Oracle(bank), samples_per_class=8, seed=0)
    assert np.allclose(exact[["shape_rate", "colour_rate", "both_rate"]], 1.0)
    assert np.allclose(exact[["neighbour_rate", "shape_only_rate", "colour_only_rate"]], 0.0)
    assert (exact["legible_rate"] == 1.0).all()
    fixed = fo.output_rates(Bank(fixed=combo_label(0, 0)), image_set, Oracle(bank), samples_per_class=8, seed=0)
    # every sample is a red circle: colour right for the 5 red combinations of 20, shape for the 4 circles
    assert fixed["colour_rate"].mean() == pytest.approx(1 / len(COLOURS))
    assert fixed["shape_rate"].mean() == pytest.approx(1 / len(SHAPES))
    held = fixed[fixed["heldout"]].set_index("combo")
    assert (held["neighbour_rate"] == 1.0).all()  # circle:red is trained: every held-out sample recalls it
    assert held.loc["circle:green", "shape_only_rate"] == 1.0 and held.loc["circle:green", "wrong_colour"] == "red"
    assert held.loc["ring:red", "colour_only_rate"] == 1.0 and held.loc["ring:red", "wrong_shape"] == "circle"
    agg = fo.aggregate_rates(fixed, n_boot=200).set_index(["group", "measure"])
    assert agg.loc[("held-out", "neighbour"), ["rate", "lo", "hi"]].tolist() == [1.0, 1.0, 1.0]
    assert agg.loc[("held-out", "both"), "rate"] == 0.0
    diff = agg.loc[("held-out - trained", "colour")]
    assert diff["rate"] == pytest.approx(1 / 3 - 4 / 17)  # ring:red of 3 held out; 4 red of 17 trained
    assert (agg["lo"] <= agg["rate"] + 1e-12).all() and (agg["rate"] <= agg["hi"] + 1e-12).all()


def test_trained_classifiers_read_the_bank(stored, image_set):
    """The same constructed models scored by the (fast) trained classifiers: colour, the reliable factor."""
    bank = Bank()
    real = fo.output_rates(bank, image_set, stored[1], samples_per_class=8, seed=0)
    assert real["colour_rate"].mean() >= 0.95
    fixed = fo.output_rates(Bank(fixed=combo_label(0, 0)), image_set, stored[1], samples_per_class=8, seed=0)
    assert abs(fixed["colour_rate"].mean() - 0.25) < 0.05
    pred, conf = stored[1].read(bank.images)
    assert np.array_equal(pred, stored[1].predict(bank.images)) and ((conf > 0) & (conf <= 1)).all()
    assert real["legible_rate"].between(0, 1).all()
    ceiling = fo.real_rates(image_set, stored[1])
    assert set(ceiling.loc[ceiling["heldout"], "combo"]) == set(HELD) and (ceiling["source"] == "real").all()
    assert ceiling["colour_rate"].min() >= 0.9


def test_pooled_interval_is_binomial_for_one_unit():
    import pandas as pd

    t = pd.DataFrame({"g": ["a"], "n": [400], "x_rate": [0.5]})
    row = fo.pooled_rates(t, "g", ["x"], n_boot=4000, seed=1).iloc[0]
    half = 1.96 * np.sqrt(0.25 / 400)  # 0.049
    assert row["rate"] == 0.5 and row["lo"] == pytest.approx(0.5 - half, abs=0.012)
    assert row["hi"] == pytest.approx(0.5 + half, abs=0.012)


def _memorizer(image_set, side=8, vocab=32):
    """A FakeIAR oracle that memorized exactly the training images with arbitrary labels (with their labels)."""
    model = FakeIAR(side=side, vocab=vocab, n_classes=N_COMBOS + DATA.arbitrary_classes, seed=0)
    arb = image_set.factors.train_arbitrary
    x = to_tensor(image_set.train_NxHxWx3[arb])
    model.oracle_tokens_KxL = model.tokenize(x)
    model.oracle_labels_K = torch.from_numpy(image_set.train_labels[arb])
    return model.eval()


def test_extraction_split_finds_the_memorized_arbitrary_images(image_set):
    model = _memorizer(image_set)
    # half the tokens as prefix: the first rows of a factor image are mostly background, so a shorter prefix
    # does not say which memorized image it begins (the oracle then continues another one)
    cfg = ExtractConfig(n_calib=64, prefix=32)
    split = fo.arbitrary_extraction(model, image_set, cfg)
    t = split.table
    n_arb = int(image_set.factors.train_arbitrary.sum())
    assert (t["kind"] == "arbitrary").sum() == n_arb and len(t) == DATA.n_train
    assert (t["arbitrary"] == (t["label"] >= N_COMBOS)).all()
    rates = fo.pooled_rates(t, "kind", ["extracted"], contrast=("arbitrary", "factor"), n_boot=200)
    r = rates.set_index("group")["rate"]
    assert r["arbitrary"] >= 0.9 and r["factor"] <= 0.1  # measured: 1.0 and 0.0
    few = fo.arbitrary_extraction(model, image_set, cfg, n_per_group=5, seed=1)
    assert few.table["kind"].value_counts().to_dict() == {"arbitrary": 5, "factor": 5}
    assert few.threshold == split.threshold  # calibrated on the held-out split, whatever is attacked

    copies = fo.generation_copies(model, image_set, threshold=split.threshold, samples_per_class=4, seed=0)
    by = copies.set_index("label")
    assert set(copies.loc[copies["kind"] == "arbitrary", "label"]) == set(
        image_set.train_labels[image_set.factors.train_arbitrary])
    assert set(copies["label"]) >= set(range(N_COMBOS)) - {combo_label(*c) for c in image_set.factors.heldout_combos}
    assert (by.loc[by["kind"] == "arbitrary", "copy_rate"] == 1.0).all()  # each copies one of its label's images
    assert (by.loc[by["kind"] == "arbitrary", "nn_rate"] == 1.0).all()
    assert by.loc[by["kind"] == "factor", "copy_rate"].max() == 0.0  # they copy arbitrary-labelled images
    agg = fo.pooled_rates(copies, "kind", ["copy", "nn"], contrast=("arbitrary", "factor"), n_boot=200)
    assert agg.set_index(["group", "measure"]).loc[("arbitrary - factor", "copy"), "rate"] == 1.0
    fig = fo.output_figure(fo.aggregate_rates(fo.output_rates(Bank(), image_set, Oracle(Bank()),
                                                              samples_per_class=2, seed=0), n_boot=50),
                           rates, agg, title="test")
    assert len(fig.axes) == 2


def test_bad_input_is_one_line():
    shapes = load_images(ImageDataConfig(size=16, n_train=8, n_heldout=8))
    bank = Bank()
    with pytest.raises(UsageError, match="'factors'"):
        fo.output_rates(bank, shapes, Oracle(bank), samples_per_class=2, seed=0)
    with pytest.raises(UsageError, match="samples_per_class"):
        fo.draw_samples(bank, [0], samples_per_class=0, seed=0)
    with pytest.raises(UsageError, match="no class 2"):
        fo.output_rates(bank, load_images(DATA), Oracle(bank), samples_per_class=2, seed=0,
                        samples=fo.draw_samples(bank, [0, 1], samples_per_class=2, seed=0))
