"""Digits templates come from scikit-learn's bundled data: they load with every network connection refused."""

import socket

import numpy as np
import pytest

import synthetic
from memlab.config import DataConfig, load_dataset


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access refused by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_digits_templates_load_offline_and_are_the_class_means(no_network):
    from sklearn.datasets import load_digits

    ds = load_dataset(DataConfig(dataset="templates", template_source="digits", components=10, n_train=20,
                                 n_test=5, height=8, width=8))
    assert ds.shape == (3, 8, 8) and ds.truth.templates_KxP.shape == (10, 64)
    digits = load_digits()
    for k in (0, 7):
        mean = digits.images[digits.target == k].mean(0)
        want = (mean - mean.min()) / (mean.max() - mean.min())  # at 8x8 the resize is the identity
        np.testing.assert_allclose(ds.truth.templates_KxP[k], want.ravel(), atol=1e-12)
    with pytest.raises(synthetic.DataError, match="components must be <= 10"):
        synthetic.make_templates(components=11, n_train=20, source="digits")
