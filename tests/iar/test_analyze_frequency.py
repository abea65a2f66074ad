"""Graded duplication (the image-set option) and the frequency analysis: score against copies, split by
memorized at one copy in a reference run."""

import numpy as np
import pytest
import torch

import synthetic
from memlab.errors import UsageError
from memlab.iar.analyze.config import AnalyzeConfig
from memlab.iar.analyze.frequency import analyze
from memlab.iar.analyze.registry import prepare
from memlab.iar.analyze.scores import memorization_scores
from memlab.iar.config import ImageDataConfig
from memlab.iar.fake import lookup_memorizer
from memlab.iar.pipeline import RunData, fold_duplicates
from synthetic.images import load_image_set
from tests.iar.tiny_models import lookup_setting

torch.set_num_threads(1)


def _copies(s):
    base = [i.split("#copy")[0] for i in s.train_ids]
    return {i: base.count(i) for i in dict.fromkeys(base)}


def test_graded_duplication_puts_each_group_at_its_copy_count():
    s = load_image_set("shapes", n_train=40, n_heldout=8, graded=(1, 2, 4, 8, 16), graded_size=4, graded_start=8)
    counts = list(_copies(s).values())
    assert counts == [1] * 8 + [1] * 4 + [2] * 4 + [4] * 4 + [8] * 4 + [16] * 4 + [1] * 12
    assert len(s.train_ids) == 40 + 4 * (1 + 3 + 7 + 15)
    moved = load_image_set("shapes", n_train=40, n_heldout=8, graded=(1, 2, 4, 8, 16), graded_size=4, graded_start=20)
    assert list(_copies(moved)) == list(_copies(s))  # the same images, other ones at each count
    assert list(_copies(moved).values())[8:16] == [1] * 8
    # the old option gives the same rows as before
    old = load_image_set("shapes", n_train=10, n_heldout=4, duplicates=3, n_duplicated=2)
    a, b = old.train_ids[:2]
    assert old.train_ids[10:] == (f"{a}#copy1", f"{a}#copy2", f"{b}#copy1", f"{b}#copy2")


@pytest.mark.parametrize("kw, needle", [
    (dict(graded=(1, 2), graded_size=4, graded_start=35), "graded_start + 2 x graded_size <= n_train=40"),
    (dict(graded=(0, 2)), "integers >= 1"),
    (dict(graded=(1, 2), duplicates=3, n_duplicated=2), "give one or the other"),
])
def test_bad_graded_image_sets_are_data_errors(kw, needle):
    with pytest.raises(synthetic.DataError, match=needle.replace("+", r"\+")):
        load_image_set("shapes", n_train=40, n_heldout=8, **kw)


def test_graded_config_checks_fields():
    with pytest.raises(UsageError, match="--graded needs --graded-start"):
        ImageDataConfig(n_train=16, graded=(1, 2, 4), graded_size=8)
    with pytest.raises(UsageError, match="graded \\(each value\\) must be an integer >= 1, got 0"):
        ImageDataConfig(graded=(0,))
    cfg = ImageDataConfig(n_train=16, n_heldout=8, graded=(1, 2, 4), graded_size=2)
    from memlab.iar.data import image_set_tensors

    data = fold_duplicates(*image_set_tensors(cfg))
    assert data.copies.tolist() == [1, 1, 2, 2, 4, 4] + [1] * 10


def test_frequency_splits_by_memorized_at_one_copy_in_the_reference():
    model, data, _, tokens = lookup_setting()
    copies = np.array([1, 1, 2, 2, 4, 4, 8, 8])
    here = RunData(data.train_images, data.train_labels, data.train_ids, copies, data.heldout_images,
                   data.heldout_labels)
    ref_model = lookup_memorizer(tokens[[0, 2, 4, 6]], n_filler=8)  # seen once there: 0, 2, 4, 6 memorized
    ref = (ref_model, RunData(data.train_images, data.train_labels, data.train_ids, np.ones(8, int),
                              data.heldout_images, data.heldout_labels))
    ctx = prepare(model, here, AnalyzeConfig(what=("frequency",), n_boot=20), reference=ref)
    res = analyze(ctx)
    ref_scores = memorization_scores(ref_model, tokens, data.train_labels, 4)[0]["edit_score"].to_numpy()
    mem1 = ref_scores >= 0.9
    assert mem1[[0, 2, 4, 6]].all()
    imgs = res.tables["frequency_images"]
    assert imgs["memorized_at_one"].tolist() == mem1.tolist()
    t = res.tables["frequency"].set_index(["copies", "split"])
    assert t.loc[(1, "all"), "n"] == 2 and t.loc[(8, "all"), "score"] == 1.0  # the lookup memorizer: all exact
    for c in (1, 2, 4, 8):
        rows = np.flatnonzero((copies == c) & ~mem1)
        if len(rows):
            assert t.loc[(c, "not memorized at one copy"), "gain"] == pytest.approx(np.mean(1.0 - ref_scores[rows]))
        assert t.loc[(c, "memorized at one copy"), "gain"] == pytest.approx(0.0)
    assert res.summary["reference"] is True


def test_frequency_without_reference_has_no_split_and_a_reference_must_share_images():
    model, data, _, tokens = lookup_setting()
    ctx = prepare(model, data, AnalyzeConfig(what=("frequency",), n_boot=20))
    assert set(analyze(ctx).tables["frequency"]["split"]) == {"all"}
    other = RunData(data.train_images, data.train_labels, np.array([f"x{i}" for i in range(8)]), np.ones(8, int),
                    data.heldout_images, data.heldout_labels)
    with pytest.raises(UsageError, match="shares no image seen once"):
        analyze(prepare(model, data, AnalyzeConfig(what=("frequency",), n_boot=20), reference=(model, other)))
