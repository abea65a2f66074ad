import numpy as np
import pytest

import synthetic
from synthetic.templates import procedural_templates


def test_gmm_shapes_sphere_and_moments():
    ds = synthetic.make_gmm(dim=20, components=3, n_train=50, n_test=20000, variance=0.5, seed=3)
    assert ds.train_NxD.shape == (50, 20) and ds.test_TxD.shape == (20000, 20)
    np.testing.assert_allclose(np.linalg.norm(ds.truth.means_KxD, axis=1), np.sqrt(20), rtol=1e-12)
    resid = ds.test_TxD - ds.truth.means_KxD[ds.test_labels]
    assert abs(resid.var() - 0.5) < 0.02  # 400k numbers: sd of the variance estimate ~0.001
    assert abs(resid.mean()) < 0.01
    counts = np.bincount(ds.test_labels, minlength=3) / 20000
    np.testing.assert_allclose(counts, 1 / 3, atol=0.02)


def test_gmm_seeded():
    a, b, c = (synthetic.make_gmm(seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.train_NxD, b.train_NxD)
    assert not np.allclose(a.train_NxD, c.train_NxD)


@pytest.mark.parametrize("kwargs, match", [
    (dict(dim=0), "dim"), (dict(components=-1), "components"), (dict(components=20, n_train=10), "components"),
    (dict(variance=0.0), "variance"),
])
def test_gmm_bad_input(kwargs, match):
    with pytest.raises(synthetic.DataError, match=match):
        synthetic.make_gmm(**kwargs)


def test_templates_structure_and_moments():
    ds = synthetic.make_templates(components=5, n_train=40, n_test=20000, colour_variance=2.0, seed=1)
    assert ds.shape == (3, 15, 15) and ds.dim == 675
    a = ds.truth.templates_KxP
    assert a.min() == 0 and np.allclose(a.max(axis=1), 1)
    # every sample is rank one: colour (3) outer template (225)
    x = ds.train_NxD.reshape(40, 3, 225)
    s = np.linalg.svd(x, compute_uv=False)
    assert np.all(s[:, 1] < 1e-9 * s[:, 0])
    # recover the colour of each test sample and check its variance s_c^2
    tpl = a[ds.test_labels]
    colours = np.einsum("ncp,np->nc", ds.test_TxD.reshape(-1, 3, 225), tpl) / np.sum(tpl**2, 1, keepdims=True)
    assert abs(colours.var() - 2.0) < 0.06


def test_procedural_templates_distinct_and_deterministic():
    t1, t2 = procedural_templates(24), procedural_templates(24)
    np.testing.assert_array_equal(t1, t2)
    flat = t1.reshape(24, -1)
    d2 = np.sum((flat[:, None] - flat[None]) ** 2, axis=2) + np.eye(24) * 1e9
    assert d2.min() > 1.0


def test_templates_from_digits_and_files(tmp_path):
    ds = synthetic.make_templates(components=3, source="digits", n_train=10, n_test=5)
    assert ds.truth.templates_KxP.shape == (3, 225)
    imgs = np.random.default_rng(0).random((6, 28, 28))
    np.save(tmp_path / "t.npy", imgs)
    np.savez(tmp_path / "t.npz", images=imgs)
    for name in ("t.npy", "t.npz"):
        ds = synthetic.make_templates(components=4, source=str(tmp_path / name), n_train=10, n_test=5)
        assert ds.shape == (3, 28, 28)
        expected = (imgs[2] - imgs[2].min()) / (imgs[2].max() - imgs[2].min())
        np.testing.assert_allclose(ds.truth.templates_KxP[2], expected.ravel())


def test_template_file_errors(tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros((5, 10)))
    np.save(tmp_path / "few.npy", np.zeros((2, 8, 8)))
    with pytest.raises(synthetic.DataError, match="does not exist"):
        synthetic.make_templates(source=str(tmp_path / "missing.npy"))
    with pytest.raises(synthetic.DataError, match="shape"):
        synthetic.make_templates(source=str(tmp_path / "flat.npy"))
    with pytest.raises(synthetic.DataError, match="fewer than components"):
        synthetic.make_templates(components=4, source=str(tmp_path / "few.npy"))
    with pytest.raises(synthetic.DataError, match="procedural, digits"):
        synthetic.make_templates(source="fashion")


def test_synthetic_imports_numpy_only():
    import subprocess
    import sys

    code = "import sys, synthetic; bad = [m for m in ('jax', 'torch', 'flax') if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
