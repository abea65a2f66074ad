"""The default-size IAR setting the yardstick benchmarks share (benchmarks/edits.py, benchmarks/localizers.py):
64 shapes of which 8 are planted 4 times, an untrained default-size tokenizer and model (throughput does not
depend on the weights), the planted duplicates as targets, and the yardstick's baseline."""

from __future__ import annotations

import torch

from memlab.iar.config import IARTrainConfig, ImageDataConfig, RunConfig
from memlab.iar.data import image_set_tensors
from memlab.iar.evalsets import choose
from memlab.iar.extract import ExtractConfig
from memlab.iar.pipeline import fold_duplicates
from memlab.iar.train import build_model, build_tokenizer
from memlab.iar.yardstick import make_baseline


def default_setting(arch: str, n_samples: int = 256):
    """-> (model with its tokenizer, RunData, EvalSets, Baseline)."""
    cfg = RunConfig(data=ImageDataConfig(n_train=64, duplicates=4, n_duplicated=8), train=IARTrainConfig(arch=arch))
    torch.manual_seed(0)
    data = fold_duplicates(*image_set_tensors(cfg.data))
    model = build_model(cfg, num_classes=int(data.train_labels.max()) + 1).eval()
    model.attach_tokenizer(build_tokenizer(cfg).eval())
    ids = list(data.train_ids)
    sets = choose(ids, data.copies, ids, len(data.heldout_images))
    return model, data, sets, make_baseline(model, data, sets, ExtractConfig(), n_samples=n_samples)
