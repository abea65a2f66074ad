"""Image sets as torch tensors (B x 3 x H x W, pixels in [0, 1])."""

from __future__ import annotations

import numpy as np
import torch

from memlab.errors import UsageError
from memlab.iar.config import ImageDataConfig


def load_images(cfg: ImageDataConfig):
    """The numpy ImageSet a config names; data errors become UsageError (one line, exit 2)."""
    import synthetic
    from synthetic.images import load_image_set

    try:
        return load_image_set(cfg.data, size=cfg.size, n_train=cfg.n_train, n_heldout=cfg.n_heldout,
                              seed=cfg.seed, duplicates=cfg.duplicates, n_duplicated=cfg.n_duplicated,
                              graded=cfg.graded, graded_size=cfg.graded_size, graded_start=cfg.graded_start,
                              heldout_combos=cfg.heldout_combos, heldout_share=cfg.heldout_share,
                              arbitrary=cfg.arbitrary_labels, arbitrary_classes=cfg.arbitrary_classes)
    except synthetic.DataError as e:
        raise UsageError(str(e)) from None


def num_classes(cfg: ImageDataConfig) -> int | None:
    """The class count a data config fixes without its images (the `factors` set: every combination, held out
    or not, and the arbitrary classes); None: the labels present decide."""
    if cfg.data != "factors":
        return None
    from synthetic.factors import class_names

    return len(class_names(cfg.arbitrary_classes if cfg.arbitrary_labels else 0))


def to_tensor(images_NxHxWx3: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images_NxHxWx3.transpose(0, 3, 1, 2))).float()


def image_set_tensors(cfg: ImageDataConfig):
    """-> (train N x 3 x H x W, train labels N, heldout, heldout labels, train ids list[str])."""
    s = load_images(cfg)
    return (to_tensor(s.train_NxHxWx3), torch.from_numpy(s.train_labels).long(),
            to_tensor(s.heldout_NxHxWx3), torch.from_numpy(s.heldout_labels).long(), list(s.train_ids))
