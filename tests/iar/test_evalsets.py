"""The evaluation sets T (targets), C (controls) and H: chosen by rule, fixed once in the run."""

import json

import numpy as np
import pytest

from memlab.errors import UsageError
from memlab.iar.evalsets import EvalSets, choose, fix, load

IDS = [f"shapes/s0/{i:05d}" for i in range(8)]


def test_planted_duplicates_are_the_targets_and_other_extracted_images_the_controls():
    copies = np.array([3, 3, 1, 1, 1, 1, 1, 1])
    sets = choose(IDS, copies, [IDS[0], IDS[4], IDS[1], IDS[6]], n_heldout=16)
    assert sets.target_ids == (IDS[0], IDS[1]) and sets.control_ids == (IDS[4], IDS[6])
    assert sets.source == "planted duplicates"
    np.testing.assert_array_equal(sets.rows(np.array(IDS), "target"), [0, 1])
    np.testing.assert_array_equal(sets.rows(np.array(IDS), "control"), [4, 6])


def test_without_duplicates_the_extracted_images_are_split_by_seed_and_a_user_list_wins():
    copies = np.ones(8, int)
    found = [IDS[i] for i in (5, 1, 7, 2, 3)]
    a, b = choose(IDS, copies, found, 16, seed=0), choose(IDS, copies, found, 16, seed=0)
    assert a == b and len(a.target_ids) == 3 and len(a.control_ids) == 2
    assert set(a.target_ids) | set(a.control_ids) == set(found) and not set(a.target_ids) & set(a.control_ids)
    assert {choose(IDS, copies, found, 16, seed=s).target_ids for s in range(6)} != {a.target_ids}
    user = choose(IDS, copies, found, 16, targets=[IDS[2], IDS[0]])
    assert user.target_ids == (IDS[2], IDS[0]) and user.control_ids == tuple(i for i in found if i != IDS[2])
    with pytest.raises(UsageError, match="not in this run's training set"):
        choose(IDS, copies, found, 16, targets=["nope"])
    with pytest.raises(UsageError, match="the target set is empty"):
        choose(IDS, copies, [], 16)


def test_sets_are_fixed_once_per_run(tmp_path):
    sets = choose(IDS, np.array([2] + [1] * 7), [IDS[0], IDS[3]], 16)
    assert load(tmp_path) is None and fix(tmp_path, sets) == sets and load(tmp_path) == sets
    assert fix(tmp_path, sets) == sets
    other = choose(IDS, np.ones(8, int), [IDS[0], IDS[3]], 16, targets=[IDS[5]])
    with pytest.raises(UsageError, match="fixes this run's evaluation sets and they differ in target_ids"):
        fix(tmp_path, other)
    assert load(tmp_path) == sets
    (tmp_path / "evalsets.json").write_text(json.dumps({"target_ids": [IDS[0]]}))
    with pytest.raises(UsageError, match="damaged .*evalsets.json"):
        load(tmp_path)
    with pytest.raises(UsageError, match="both target and control"):
        EvalSets((IDS[0],), (IDS[0],), 4, "user list", (IDS[0],))
