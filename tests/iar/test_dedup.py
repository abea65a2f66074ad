"""Deduplication (issue 14 item 5): near-duplicate groups in pixel space on constructed images and on a planted
image set, the rows a run keeps, and `memlab iar train --dedup` training without the copies."""

import numpy as np
import torch

from memlab.iar.config import IARTrainConfig, ImageDataConfig, RunConfig
from memlab.iar.data import image_set_tensors
from memlab.iar.mitigate import dedup, trainset
from memlab.iar.train import train_run

torch.set_num_threads(1)


def test_groups_join_copies_and_near_copies_only():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (6, 48))
    x[3] = x[0]  # exact copy
    x[4] = np.clip(x[0] + rng.normal(0, 0.005, 48), 0, 1)  # near copy: RMS distance about 0.005
    x[5] = np.clip(x[1] + 0.03, 0, 1)  # a uniformly brighter image: RMS distance about 0.03
    d = dedup.rms_distances(x)
    assert d[0, 3] == 0 and 0.002 < d[0, 4] < 0.01 and 0.02 < d[1, 5] < 0.04 and d[0, 1] > 0.3
    found = dedup.groups(x, 0.02)
    assert [g.tolist() for g in found] == [[0, 3, 4]]
    assert [g.tolist() for g in dedup.groups(x, 0.05)] == [[0, 3, 4], [1, 5]]
    assert dedup.keep_rows(6, found).tolist() == [0, 1, 2, 5]
    assert [g.tolist() for g in dedup.groups(x, 1e-9)] == [[0, 3]]


def test_planted_duplicates_are_found_exactly_and_the_threshold_sits_below_distinct_images():
    x, _, _, _, ids = image_set_tensors(ImageDataConfig(n_train=64, n_heldout=4, duplicates=5, n_duplicated=4))
    flat = x.reshape(len(x), -1).numpy()
    found = dedup.groups(flat, 0.02)
    rep = dedup.report(ids, found, 0.02, dedup.nearest_distances(flat, ids))
    assert rep["groups_found"] == rep["planted_groups"] == rep["groups_equal_to_a_planted_group"] == 4
    assert rep["rows_removed"] == rep["planted_rows_extra"] == 16
    assert rep["nearest_other_distance"]["min"] > 5 * 0.02  # distinct shapes are far from the threshold


def test_train_dedup_trains_on_one_row_per_group(tmp_path):
    cfg = RunConfig(ImageDataConfig(n_train=8, n_heldout=4, duplicates=3, n_duplicated=2),
                    IARTrainConfig(arch="raster", epochs=1, tokenizer_epochs=1, batch_size=4, width=32, depth=1,
                                   heads=2, codebook_size=16, latent_channels=4, tokenizer_channels=(8, 16, 16),
                                   dedup=True))
    x, _, _, _, ids = image_set_tensors(cfg.data)
    sel = trainset.select(cfg.train, x, ids)
    assert [ids[r] for r in sel.keep] == [i for i in ids if "#copy" not in i] and sel.weights is None
    m = train_run(cfg, tmp_path / "run", progress=False, figures=False)
    info = m["training_set"]
    assert info["rows"] == 8 and info["dedup"]["rows_removed"] == 4 and len(info["dedup"]["removed_ids"]) == 4
    assert m["targets"] == {"source": "planted duplicates", "n": 2}  # their originals are kept
