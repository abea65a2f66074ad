"""One small CNN per factor of the `factors` image set (shape, colour, position bin, size bin), so that a
generated image can be read back as the factors it shows (issue 18's output view).

Each is memlab.iar.classifier's ImageClassifier trained by its train_classifier on freshly drawn factor images
(synthetic.factors.make_factor_images with the data seed + FRESH_SEED_OFFSET + the classifier seed: never the
run's images). Fresh draws show every shape x colour combination, the run's held-out ones included, so the
classifiers can name what a held-out combination's samples show. Their accuracy is measured on real images:
fresh ones they never saw, the run's held-out split and its novel split (the held-out combinations), and the
run's unique training images.

Samples are decoded tokens, and a tokenizer blurs: at 32 x 32 with an 8 x 8 latent grid a classifier trained on
crisp images names the shape of only about a quarter of the reconstructions of real images. Given the run's
model (`reconstruct_with`), the classifiers learn from the fresh images and from their reconstructions by its
tokenizer (each image twice), and are also measured on reconstructions of the real images: the ceiling of what a
sample can be read as. The fingerprint then includes a digest of what that tokenizer does.

    RUN/factor_classifiers/<factor>.safetensors   weights, one file per factor (no pickle)
    RUN/factor_classifiers/factor_classifiers.json config, what they were trained on, accuracies, fingerprint
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from memlab.errors import UsageError
from memlab.iar.classifier import FRESH_SEED_OFFSET, ClassifierConfig, ImageClassifier, load_weights, train_classifier
from memlab.iar.classifier import fingerprint as data_fingerprint
from memlab.iar.batching import decode_all, tokenize_all
from memlab.iar.config import ImageDataConfig
from memlab.iar.data import load_images, to_tensor
from memlab.io import error_reason, read_json, write_json

DIRNAME, META = "factor_classifiers", "factor_classifiers.json"
# Longer than the class classifier's default: at 400 steps shape sits near 0.94 on fresh 32 x 32 images, at 1000
# it is about 1.0 (position bins stay about 0.97: a centre near the midline is ambiguous by a pixel).
DEFAULT_CONFIG = ClassifierConfig(steps=1000, n_fresh=8192)
N_TEST = 1024  # fresh test images, drawn after the training ones from the same seed
VERSION = 1


@dataclass
class FactorClassifiers:
    """factor name (synthetic.factors.FACTOR_NAMES order) -> classifier of its values; `info`: the stored
    metadata (accuracies per split and factor, what they were trained on, status)."""

    models: dict[str, ImageClassifier]
    info: dict

    @property
    def size(self) -> int:
        return next(iter(self.models.values())).size

    def predict(self, images_Bx3xHxW: torch.Tensor, batch_size: int = 256) -> np.ndarray:
        """Predicted factor values, int64 B x F (columns in `models` order); pixels in [0, 1]."""
        return self.read(images_Bx3xHxW, batch_size)[0]

    def read(self, images_Bx3xHxW: torch.Tensor, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """(predicted values int64 B x F, their softmax probabilities B x F): how sure each reading is."""
        if images_Bx3xHxW.ndim != 4 or tuple(images_Bx3xHxW.shape[1:]) != (3, self.size, self.size):
            raise UsageError(f"the factor classifiers read 3 x {self.size} x {self.size} images, got "
                             f"{tuple(images_Bx3xHxW.shape[1:])} (does the model decode at the run's image size?)")
        preds, confs = [], []
        with torch.no_grad():
            for m in self.models.values():
                m.eval()
                p_BxK = torch.cat([m(images_Bx3xHxW[i:i + batch_size]).softmax(1)
                                   for i in range(0, len(images_Bx3xHxW), batch_size)])
                conf_B, pred_B = p_BxK.max(1)
                preds.append(pred_B.numpy()), confs.append(conf_B.double().numpy())
        return np.stack(preds, 1), np.stack(confs, 1)


def accuracies(clfs: FactorClassifiers, images_Nx3xHxW: torch.Tensor, factors_NxF: np.ndarray) -> dict:
    """{"n", each factor: share right, "shape+colour": share with both right} on images N x 3 x H x W."""
    from synthetic.factors import FACTOR_NAMES

    if not len(images_Nx3xHxW):
        return {"n": 0, **{f: None for f in FACTOR_NAMES}, "shape+colour": None}
    hit_NxF = clfs.predict(images_Nx3xHxW) == np.asarray(factors_NxF)
    return {"n": len(hit_NxF), **{f: float(hit_NxF[:, j].mean()) for j, f in enumerate(FACTOR_NAMES)},
            "shape+colour": float(hit_NxF[:, :2].all(1).mean())}


def fingerprint(data_cfg: ImageDataConfig, cfg: ClassifierConfig, tokenizer_digest: str = "") -> str:
    """The class classifier's fingerprint (image-set and classifier configs), salted with this recipe and the
    digest of the tokenizer whose reconstructions they learn from ("" for none)."""
    text = f"factor-classifiers/v{VERSION}/test{N_TEST}/{data_fingerprint(data_cfg, cfg)}/{tokenizer_digest}"
    return hashlib.sha256(text.encode()).hexdigest()


def tokenizer_digest(model, size: int) -> str:
    """sha256 of the tokens and (rounded) reconstructions `model` makes of 8 fixed factor images: the same
    tokenizer gives the same digest, whatever model or checkpoint it is attached to."""
    from synthetic.factors import make_factor_images

    x = to_tensor(make_factor_images(8, size, seed=18_181)[0])
    with torch.no_grad():
        tokens = model.tokenize(x)
        pixels = np.round(model.decode(tokens).double().numpy(), 3)
    return hashlib.sha256(tokens.cpu().numpy().astype(np.int64).tobytes() + pixels.tobytes()).hexdigest()


def fresh_seed(data_cfg: ImageDataConfig, cfg: ClassifierConfig) -> int:
    return data_cfg.seed + FRESH_SEED_OFFSET + cfg.seed


def train_factor_classifiers(data_cfg: ImageDataConfig, cfg: ClassifierConfig = DEFAULT_CONFIG,
                             image_set=None, reconstruct_with=None) -> FactorClassifiers:
    """Train the four classifiers on fresh images (and their reconstructions by `reconstruct_with`'s tokenizer,
    an IARModel) and measure them (`image_set`: the run's, loaded when None). Deterministic: the same configs
    (and tokenizer) give the same weights and numbers."""
    from synthetic.factors import FACTOR_NAMES, FACTOR_VALUES, make_factor_images

    if data_cfg.data != "factors":
        raise UsageError(f"factor classifiers need a run of --data factors, got --data {data_cfg.data}")
    images = load_images(data_cfg) if image_set is None else image_set
    seed = fresh_seed(data_cfg, cfg)
    x, f_NxF, _ = make_factor_images(cfg.n_fresh, data_cfg.size, seed)
    recon = (lambda x_Nx3xHxW: x_Nx3xHxW) if reconstruct_with is None else (
        lambda x_Nx3xHxW: decode_all(reconstruct_with, tokenize_all(reconstruct_with, x_Nx3xHxW)))
    x_t = to_tensor(x)
    y_NxF = torch.from_numpy(f_NxF)
    if reconstruct_with is not None:
        x_t, y_NxF = torch.cat([x_t, recon(x_t)]), torch.cat([y_NxF, y_NxF])
    t0 = time.perf_counter()
    models = {name: train_classifier(x_t, y_NxF[:, j].contiguous(), len(FACTOR_VALUES[j]), cfg)
              for j, name in enumerate(FACTOR_NAMES)}
    seconds = time.perf_counter() - t0
    clfs = FactorClassifiers(models, {})
    fi = images.factors
    unique = np.array(["#copy" not in s for s in images.train_ids])
    test_x, test_f, _ = make_factor_images(N_TEST, data_cfg.size, seed, start=cfg.n_fresh)
    real = {"fresh_test": (to_tensor(test_x), test_f),
            "run_train": (to_tensor(images.train_NxHxWx3[unique]), fi.train_NxF[unique]),
            "run_heldout": (to_tensor(images.heldout_NxHxWx3), fi.heldout_NxF),
            "run_novel": (to_tensor(fi.novel_NxHxWx3), fi.novel_NxF)}
    acc = {"fit": accuracies(clfs, x_t, y_NxF.numpy()), **{k: accuracies(clfs, *v) for k, v in real.items()}}
    if reconstruct_with is not None:
        acc.update({f"{k}_reconstructed": accuracies(clfs, recon(x_k) if len(x_k) else x_k, f_k)
                    for k, (x_k, f_k) in real.items() if k != "run_train"})
    digest = "" if reconstruct_with is None else tokenizer_digest(reconstruct_with, data_cfg.size)
    clfs.info = {
        "fingerprint": fingerprint(data_cfg, cfg, digest), "data": dataclasses.asdict(data_cfg),
        "config": dataclasses.asdict(cfg), "size": data_cfg.size, "factors": list(FACTOR_NAMES),
        "values": {n: list(v) for n, v in zip(FACTOR_NAMES, FACTOR_VALUES)},
        "trained_on": {"source": "fresh", "n": cfg.n_fresh, "seed": seed, "reconstructed": digest != "",
                       "tokenizer_digest": digest,
                       "note": f"freshly drawn factor images (seed {seed}, every combination; the run's images "
                               f"use seed {data_cfg.seed})" + ("" if not digest else ", each also as reconstructed "
                                                               "by the run's tokenizer")},
        "accuracy": acc, "train_seconds": seconds}
    return clfs


def _store(run: Path, clfs: FactorClassifiers) -> None:
    tmp = Path(tempfile.mkdtemp(dir=run, prefix=f".{DIRNAME}."))
    try:
        for name, m in clfs.models.items():
            save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(tmp / f"{name}.safetensors"))
        write_json(tmp / META, clfs.info)
        shutil.rmtree(run / DIRNAME, ignore_errors=True)
        os.replace(tmp, run / DIRNAME)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _load(directory: Path, info: dict) -> FactorClassifiers:
    meta = directory / META
    try:
        shapes = {n: len(info["values"][n]) for n in info["factors"]}
        size, width = int(info["size"]), int(info["config"]["width"])
    except (KeyError, TypeError, ValueError) as e:
        raise UsageError(f"damaged factor-classifier metadata {meta}: {error_reason(e)}") from None
    models = {}
    for name, k in shapes.items():
        models[name] = load_weights(ImageClassifier(k, size, width), directory / f"{name}.safetensors",
                                    "factor-classifier")
    return FactorClassifiers(models, info)


def ensure_factor_classifiers(run_dir: Path, data_cfg: ImageDataConfig, cfg: ClassifierConfig | None = None,
                              image_set=None, reconstruct_with=None) -> FactorClassifiers:
    """The classifiers stored in RUN/factor_classifiers/ when their fingerprint matches (info["status"]
    "loaded"), else ones trained now and stored atomically ("trained", or "retrained" when they replace ones of
    another config or tokenizer). `reconstruct_with`: the run's model (any checkpoint: only its tokenizer is
    used), see the module note. A damaged stored file is a UsageError naming it; nothing is written for a
    non-factors run."""
    run, cfg = Path(run_dir), cfg or DEFAULT_CONFIG
    if data_cfg.data != "factors":
        raise UsageError(f"factor classifiers need a run of --data factors, got --data {data_cfg.data}")
    if not run.is_dir():
        raise UsageError(f"run directory does not exist: {run}")
    meta = run / DIRNAME / META
    status = "trained"
    if meta.exists():
        info = read_json(meta)
        if not isinstance(info, dict) or not isinstance(info.get("fingerprint"), str):
            raise UsageError(f"damaged factor-classifier metadata {meta}: expected an object with a 'fingerprint'")
        digest = "" if reconstruct_with is None else tokenizer_digest(reconstruct_with, data_cfg.size)
        if info["fingerprint"] == fingerprint(data_cfg, cfg, digest):
            clfs = _load(run / DIRNAME, info)
            clfs.info = {**info, "status": "loaded"}
            return clfs
        status = "retrained: the stored ones had another data or classifier config or tokenizer"
    clfs = train_factor_classifiers(data_cfg, cfg, image_set, reconstruct_with)
    _store(run, clfs)
    clfs.info = {**clfs.info, "status": status}
    return clfs
