"""The low-rank GMM generator: orthonormal subspaces, means on the sphere, the stated covariance, seeded,
and one-line errors for bad parameters."""

import numpy as np
import pytest

import synthetic


def test_lowrank_data_has_the_stated_law():
    ds = synthetic.make_lowrank_gmm(dim=20, components=2, rank=3, n_train=10, n_test=20000, variance=2.0,
                                    noise=0.1, seed=0)
    tr = ds.truth
    np.testing.assert_allclose(np.einsum("kdr,kds->krs", tr.bases_KxDxR, tr.bases_KxDxR), np.eye(3)[None].repeat(2, 0),
                               atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(tr.means_KxD, axis=1), np.sqrt(20))
    x, y = ds.test_TxD, ds.test_labels
    for k in range(2):
        cov = np.cov((x[y == k] - tr.means_KxD[k]).T)
        np.testing.assert_allclose(cov, tr.covariances_KxDxD()[k], atol=0.08)
    assert sorted(tr.within_eigenvalues()[0])[-3:] == [2.1, 2.1, 2.1]
    again = synthetic.make_lowrank_gmm(dim=20, components=2, rank=3, n_train=10, n_test=20000, variance=2.0,
                                       noise=0.1, seed=0)
    np.testing.assert_array_equal(again.train_NxD, ds.train_NxD)
    # noise 0: every sample lies exactly on its component's affine subspace
    flat = synthetic.make_lowrank_gmm(dim=20, components=2, rank=3, n_train=50, n_test=5, seed=2)
    U, r = flat.truth.bases_KxDxR[flat.train_labels], flat.train_NxD - flat.truth.means_KxD[flat.train_labels]
    np.testing.assert_allclose(r - np.einsum("ndr,ner,ne->nd", U, U, r), 0, atol=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    ({"rank": 0}, "rank must be a positive integer"), ({"rank": 31}, r"rank must be <= dim \(30\)"),
    ({"noise": -0.1}, "noise must be a number >= 0"), ({"noise": "x"}, "noise must be a number"),
    ({"variance": 0}, "variance must be a positive"), ({"components": 200}, "components must be <="),
])
def test_lowrank_bad_parameters(kwargs, match):
    with pytest.raises(synthetic.DataError, match=match):
        synthetic.make_lowrank_gmm(**kwargs)
