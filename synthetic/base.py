"""The common return type of every generator in `synthetic`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


class DataError(ValueError):
    """Invalid data request (a size out of range, a missing or malformed file). The message names
    the parameter and the allowed values."""


@dataclass(frozen=True)
class Dataset:
    """train_NxD / test_TxD are float arrays of flattened samples; labels give each sample's component;
    `truth` holds the generating parameters (its type tells which closed forms apply)."""

    name: str
    train_NxD: np.ndarray
    test_TxD: np.ndarray
    train_labels: np.ndarray
    test_labels: np.ndarray
    truth: Any
    shape: tuple[int, ...]  # shape of one sample before flattening

    @property
    def n_train(self) -> int:
        return int(self.train_NxD.shape[0])

    @property
    def dim(self) -> int:
        return int(self.train_NxD.shape[1])


def require_positive_int(name: str, value) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise DataError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def require_positive(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{name} must be a positive number, got {value!r}") from None
    if not np.isfinite(v) or v <= 0:
        raise DataError(f"{name} must be a positive number, got {value!r}")
    return v
