"""The factors image set (issue 18, item 1): per-image factors, held-out combinations, arbitrary labels."""

import numpy as np
import pytest
from scipy.stats import chi2_contingency

from synthetic import DataError
from synthetic.factors import (COLOURS, FACTOR_VALUES, N_COMBOS, SHAPES, combo_label, draw_heldout_combos,
                               make_factor_images, resolve_heldout)
from synthetic.images import load_image_set


def test_factor_images_show_their_factors():
    """Colour family from the mean shape pixel's hue, position from the centroid's quadrant, size from the area."""
    imgs, facts, ids = make_factor_images(200, 32, seed=3)
    assert imgs.shape == (200, 32, 32, 3) and facts.shape == (200, 4) and len(set(ids)) == 200
    import colorsys
    hue_of = {"red": 0.0, "yellow": 1 / 6, "green": 1 / 3, "blue": 2 / 3}
    for img, f in zip(imgs, facts):
        fg = img.max(-1) > 0.5  # the shape is bright and saturated, the background dark grey
        h = colorsys.rgb_to_hsv(*img[fg].mean(0))[0]
        assert min(abs(h - hue_of[COLOURS[f[1]]]), 1 - abs(h - hue_of[COLOURS[f[1]]])) < 0.06
        yy, xx = np.nonzero(fg)
        bbox_cy, bbox_cx = (yy.min() + yy.max() + 1) / 2, (xx.min() + xx.max() + 1) / 2
        assert (bbox_cy >= 16) == (f[2] in (2, 3)) or abs(bbox_cy - 16) < 2
        assert (bbox_cx >= 16) == (f[2] in (1, 3)) or abs(bbox_cx - 16) < 2
        assert (yy.max() - yy.min() + 1 > 13) == (f[3] == 1)  # large radius >= 0.26 x 32, small <= 0.2 x 32
    # every value of every factor is drawn, about uniformly
    for k, values in enumerate(FACTOR_VALUES):
        counts = np.bincount(facts[:, k], minlength=len(values))
        assert counts.min() > 200 / len(values) / 2


def test_same_id_same_image_whatever_is_held_out():
    a = load_image_set("factors", n_train=40, n_heldout=10, seed=1)
    b = load_image_set("factors", n_train=40, n_heldout=10, seed=1, heldout_combos=("circle:red", "ring:blue"))
    imgs = {i: x for i, x in zip(a.train_ids + a.heldout_ids, np.concatenate([a.train_NxHxWx3, a.heldout_NxHxWx3]))}
    shared = [(i, x) for i, x in zip(b.train_ids, b.train_NxHxWx3) if i in imgs]
    assert len(shared) > 10 and all(np.array_equal(imgs[i], x) for i, x in shared)


@pytest.mark.parametrize("kw", [{"heldout_share": 0.25}, {"heldout_combos": ("circle:red", "square:blue", "ring:green")}])
def test_heldout_combinations_never_occur_in_training(kw):
    s = load_image_set("factors", n_train=400, n_heldout=100, seed=2, duplicates=3, n_duplicated=5, **kw)
    f = s.factors
    held = set(f.heldout_combos)
    assert len(held) == (5 if "heldout_share" in kw else 3)
    for facts in (f.train_NxF, f.heldout_NxF):
        assert not any((int(a), int(b)) in held for a, b in facts[:, :2])
    # the novel split holds exactly the held-out combinations, labelled by their combination
    assert len(f.novel_ids) == 100 and {(int(a), int(b)) for a, b in f.novel_NxF[:, :2]} == held
    assert np.array_equal(f.novel_labels, combo_label(f.novel_NxF[:, 0], f.novel_NxF[:, 1]))
    # every shape and colour keeps a trained combination; factor rows follow the image rows (copies too)
    assert {int(v) for v in f.train_NxF[:, 0]} == set(range(len(SHAPES)))
    assert {int(v) for v in f.train_NxF[:, 1]} == set(range(len(COLOURS)))
    assert len(f.train_NxF) == len(s.train_ids) == 410
    copy_rows = [k for k, i in enumerate(s.train_ids) if "#copy" in i]
    base = {i: k for k, i in enumerate(s.train_ids) if "#copy" not in i}
    for k in copy_rows:
        j = base[s.train_ids[k].split("#copy")[0]]
        assert np.array_equal(f.train_NxF[k], f.train_NxF[j]) and s.train_labels[k] == s.train_labels[j]
        assert np.array_equal(s.train_NxHxWx3[k], s.train_NxHxWx3[j])
    # without arbitrary labels every label is the combination's
    assert np.array_equal(s.train_labels, combo_label(f.train_NxF[:, 0], f.train_NxF[:, 1]))


def test_arbitrary_labels_are_independent_of_every_factor():
    n = 6000
    s = load_image_set("factors", n_train=n, n_heldout=10, seed=4, arbitrary=0.3, arbitrary_classes=6)
    f = s.factors
    assert f.train_arbitrary.sum() == round(0.3 * n) and s.num_classes == N_COMBOS + 6
    arb = s.train_labels[f.train_arbitrary] - N_COMBOS
    assert arb.min() == 0 and arb.max() == 5
    for k in range(4):
        table = np.zeros((6, len(FACTOR_VALUES[k])))
        np.add.at(table, (arb, f.train_NxF[f.train_arbitrary, k]), 1)
        assert chi2_contingency(table).pvalue > 0.001, k
    # a label that a factor determines fails the same test: the check has power at this n
    combo = s.train_labels[~f.train_arbitrary]
    table = np.zeros((N_COMBOS, len(SHAPES)))
    np.add.at(table, (combo, f.train_NxF[~f.train_arbitrary, 0]), 1)
    assert chi2_contingency(table).pvalue < 1e-12
    # the other rows keep their combination's label
    rest = ~f.train_arbitrary
    assert np.array_equal(s.train_labels[rest], combo_label(f.train_NxF[rest, 0], f.train_NxF[rest, 1]))


def test_heldout_share_draw_is_seeded_and_keeps_every_value():
    assert draw_heldout_combos(0.25, 0) == draw_heldout_combos(0.25, 0)
    assert draw_heldout_combos(0.0, 0) == ()
    draws = {draw_heldout_combos(0.5, s) for s in range(5)}
    assert len(draws) > 1
    for share, most_per_shape, most_per_colour in ((0.25, 1, 2), (0.5, 2, 3), (0.75, 3, 4)):
        for seed in range(5):  # balanced: no shape keeps a single colour while another keeps all four
            held = draw_heldout_combos(share, seed)
            assert np.bincount([s for s, _ in held], minlength=5).max() <= most_per_shape
            assert np.bincount([c for _, c in held], minlength=4).max() <= most_per_colour


@pytest.mark.parametrize("call, msg", [
    (lambda: resolve_heldout(("circle:purple",), 0.0, 0), "unknown colour 'purple'; allowed: red, yellow, green, blue"),
    (lambda: resolve_heldout(("hexagon:red",), 0.0, 0), "unknown shape 'hexagon'; allowed: circle"),
    (lambda: resolve_heldout(("circle",), 0.0, 0), "must be SHAPE:COLOUR"),
    (lambda: resolve_heldout(("circle:red",), 0.25, 0), "by name or by share, not both"),
    (lambda: resolve_heldout(tuple(f"circle:{c}" for c in COLOURS), 0.0, 0), "leave some shape or colour"),
    (lambda: draw_heldout_combos(0.9, 0), "the share must be <= 0.75"),
    (lambda: load_image_set("shapes", n_train=8, n_heldout=2, arbitrary=0.3), "need the image set 'factors'"),
    (lambda: load_image_set("factors", n_train=8, n_heldout=2, arbitrary=1.0), "arbitrary label share"),
])
def test_bad_requests_name_the_allowed_values(call, msg):
    with pytest.raises(DataError, match=msg):
        call()
