import numpy as np
import pytest

from synthetic.base import DataError
from synthetic.images import SHAPE_CLASSES, load_image_set


def test_shapes_deterministic_range_and_split():
    a = load_image_set("shapes", n_train=20, n_heldout=10, seed=3)
    b = load_image_set("shapes", n_train=20, n_heldout=10, seed=3)
    np.testing.assert_array_equal(a.train_NxHxWx3, b.train_NxHxWx3)
    assert a.train_NxHxWx3.shape == (20, 16, 16, 3) and a.heldout_NxHxWx3.shape == (10, 16, 16, 3)
    assert a.train_NxHxWx3.dtype == np.float32
    assert 0.0 <= a.train_NxHxWx3.min() and a.train_NxHxWx3.max() <= 1.0
    assert set(a.train_ids).isdisjoint(a.heldout_ids)
    assert set(np.unique(a.train_labels)) <= set(range(len(SHAPE_CLASSES)))
    # every image has at least two colours (a shape on a background)
    assert all(len(np.unique(im.reshape(-1, 3), axis=0)) >= 2 for im in a.train_NxHxWx3)
    c = load_image_set("shapes", n_train=20, n_heldout=10, seed=4)
    assert np.abs(a.train_NxHxWx3 - c.train_NxHxWx3).max() > 0.1


def test_ids_are_stable_across_split_sizes():
    small = load_image_set("shapes", n_train=8, n_heldout=4, seed=0)
    big = load_image_set("shapes", n_train=30, n_heldout=10, seed=0)
    big_by_id = dict(zip(big.train_ids + big.heldout_ids, np.concatenate([big.train_NxHxWx3, big.heldout_NxHxWx3])))
    for i, img in zip(small.train_ids, small.train_NxHxWx3):
        if i in big_by_id:
            np.testing.assert_array_equal(img, big_by_id[i])
    assert load_image_set("shapes", size=32, n_train=4, n_heldout=2).train_NxHxWx3.shape[1:] == (32, 32, 3)
    with pytest.raises(DataError, match="16, 32"):
        load_image_set("shapes", size=24)


def test_duplicates_are_exact_copies_with_marked_ids():
    s = load_image_set("shapes", n_train=10, n_heldout=2, duplicates=3, n_duplicated=2)
    assert len(s.train_NxHxWx3) == 10 + 2 * 2
    for row, i in enumerate(s.train_ids[10:]):
        base, _, copy = i.partition("#copy")
        src = s.train_ids.index(base)
        assert src < 2 and copy in ("1", "2")
        np.testing.assert_array_equal(s.train_NxHxWx3[10 + row], s.train_NxHxWx3[src])
        assert s.train_labels[10 + row] == s.train_labels[src]


def test_digits_and_faces():
    d = load_image_set("digits", n_train=50, n_heldout=20)
    assert d.train_NxHxWx3.shape == (50, 16, 16, 3) and d.num_classes == 10
    np.testing.assert_array_equal(d.train_NxHxWx3[..., 0], d.train_NxHxWx3[..., 2])  # grayscale
    assert d.train_NxHxWx3.max() > 0.9 and d.train_NxHxWx3.min() < 0.05
    f = load_image_set("faces", n_train=100, n_heldout=50, size=32)
    assert f.train_NxHxWx3.shape == (100, 32, 32, 3) and set(np.unique(f.train_labels)) == {0, 1}
    with pytest.raises(DataError, match="<= 200"):
        load_image_set("faces", n_train=190, n_heldout=20)


def _write_png(path, arr):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_folder_labels_from_subfolders_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        for i in range(4):
            _write_png(tmp_path / "ok" / cls / f"{i}.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    s = load_image_set(f"folder:{tmp_path / 'ok'}", n_train=6, n_heldout=2)
    assert s.class_names == ("cats", "dogs")
    for i, lab in zip(s.train_ids, s.train_labels):
        assert i.startswith(("cats/", "dogs/")) and lab == (i.startswith("dogs/"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        load_image_set(f"folder:{tmp_path / 'empty'}")
    _write_png(tmp_path / "mixed" / "a.png", np.zeros((16, 16, 3), np.uint8))
    _write_png(tmp_path / "mixed" / "b.png", np.zeros((20, 16, 3), np.uint8))
    with pytest.raises(DataError, match="mixed sizes"):
        load_image_set(f"folder:{tmp_path / 'mixed'}", n_train=1, n_heldout=1)


def test_npz_round_trip_and_errors(tmp_path):
    imgs = np.random.default_rng(1).integers(0, 256, (12, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "x.npz", images=imgs, labels=np.arange(12) % 3, ids=np.array([f"im{i}" for i in range(12)]))
    s = load_image_set(f"npz:{tmp_path / 'x.npz'}", size=8, n_train=8, n_heldout=4, seed=0)
    by_id = {f"im{i}": imgs[i] / 255.0 for i in range(12)}
    for i, im in zip(s.train_ids, s.train_NxHxWx3):
        np.testing.assert_allclose(im, by_id[i], atol=1e-6)
    np.savez(tmp_path / "bad.npz", pixels=imgs)
    with pytest.raises(DataError, match="'images'"):
        load_image_set(f"npz:{tmp_path / 'bad.npz'}")
    with pytest.raises(DataError, match="allowed: shapes"):
        load_image_set("cifar")
