"""A small CNN that names the class of an image (pixels in [0, 1], B x 3 x H x W), trained once per image set
and stored in the run, so that class-conditional samples can be scored for class consistency.

What it is trained on keeps it honest: for the procedural `shapes` it learns from freshly drawn images (the
same generator, another seed: it never sees the run's images); fixed sets (digits, faces, folder:, npz:)
have nothing fresh to draw, so it learns from the run's unique training images (planted copies dropped).
Either way its accuracy is measured on the run's held-out images, and classifier.json says which it was.

    RUN/classifier/model.safetensors   weights (no pickle)
    RUN/classifier/classifier.json     config, what it was trained on, held-out accuracy, fingerprint
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from memlab.errors import UsageError, check_float, check_int
from memlab.iar.config import ImageDataConfig
from memlab.iar.data import load_images, to_tensor
from memlab.io import error_reason, normalize_json, read_json, write_json
from memlab.options import option

DIRNAME, WEIGHTS, META = "classifier", "model.safetensors", "classifier.json"
FRESH_SEED_OFFSET = 1_000_003  # fresh shapes use data seed + this + classifier seed: never the run's seed


@dataclass(frozen=True)
class ClassifierConfig:
    """The class-consistency classifier: sizes, AdamW optimisation, and how many fresh images it sees."""

    width: int = option(16, "channels of the first conv layers (the last two have twice as many)")
    steps: int = option(400, "optimisation steps (batches drawn from successive shuffles)")
    batch_size: int = option(64, "images per step")
    lr: float = option(3e-3, "AdamW learning rate (cosine decay to 0)")
    weight_decay: float = option(0.01, "AdamW weight decay")
    n_fresh: int = option(4096, "freshly drawn training images (procedural sets only)")
    seed: int = option(0, "seed of the initialisation, the batches and the fresh draw")

    def __post_init__(self):
        for name in ("width", "steps", "batch_size", "n_fresh"):
            check_int(name, vars(self)[name], 1)
        check_int("seed", self.seed, 0)
        check_float("lr", self.lr, 0.0, lo_open=True)
        check_float("weight_decay", self.weight_decay, 0.0, 1.0)


class ImageClassifier(nn.Module):
    """conv x 4 (two 2x downsamplings) -> global average pool -> linear; logits B x num_classes."""

    def __init__(self, num_classes: int, size: int, width: int = 16):
        super().__init__()
        self.num_classes, self.size, self.width = num_classes, size, width
        c = width
        self.features = nn.Sequential(
            nn.Conv2d(3, c, 3, padding=1), nn.GELU(), nn.Conv2d(c, c, 3, padding=1), nn.GELU(), nn.MaxPool2d(2),
            nn.Conv2d(c, 2 * c, 3, padding=1), nn.GELU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * c, 2 * c, 3, padding=1), nn.GELU(), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(2 * c, num_classes)

    def forward(self, images_Bx3xHxW: torch.Tensor) -> torch.Tensor:
        x = images_Bx3xHxW.float()
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, self.size, self.size):
            raise ValueError(f"classifier expects B x 3 x {self.size} x {self.size} images, got {tuple(x.shape)}")
        x = x - x.mean(dim=(2, 3), keepdim=True)  # colours are random: only the layout names the class
        return self.head(self.features(x).flatten(1))


def predict(classifier: ImageClassifier, images_Bx3xHxW: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Predicted class per image, int64 B."""
    classifier.eval()
    with torch.no_grad():
        return torch.cat([classifier(images_Bx3xHxW[i:i + batch_size]).argmax(1)
                          for i in range(0, len(images_Bx3xHxW), batch_size)])


def class_consistency(classifier: ImageClassifier, images_Bx3xHxW: torch.Tensor, labels_B: torch.Tensor) -> float:
    """Fraction of images classified as the class they were conditioned on (labels_B)."""
    if len(images_Bx3xHxW) != len(labels_B) or len(labels_B) == 0:
        raise ValueError(f"need one label per image and at least one image, got {len(images_Bx3xHxW)} images, "
                         f"{len(labels_B)} labels")
    return float((predict(classifier, images_Bx3xHxW) == labels_B.long()).float().mean())


def class_consistency_by_class(classifier: ImageClassifier, images_Bx3xHxW: torch.Tensor,
                               labels_B: torch.Tensor) -> dict[int, dict]:
    """{class: {"n": images conditioned on it, "consistency": fraction classified as it}} for classes present."""
    hit_B = predict(classifier, images_Bx3xHxW) == labels_B.long()
    return {int(c): {"n": int((labels_B == c).sum()), "consistency": float(hit_B[labels_B == c].float().mean())}
            for c in torch.unique(labels_B)}


def train_classifier(x_Nx3xHxW: torch.Tensor, y_N: torch.Tensor, num_classes: int,
                     cfg: ClassifierConfig) -> ImageClassifier:
    """Deterministic: the same images, config and seed give the same weights (the global RNG is untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = ImageClassifier(num_classes, int(x_Nx3xHxW.shape[-1]), cfg.width)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    g = torch.Generator().manual_seed(cfg.seed + 7)
    order, pos = torch.randperm(len(x_Nx3xHxW), generator=g), 0
    model.train()
    for _ in range(cfg.steps):
        if pos + cfg.batch_size > len(order) and pos > 0:  # next shuffle; a set smaller than a batch is one batch
            order, pos = torch.randperm(len(x_Nx3xHxW), generator=g), 0
        idx = order[pos:pos + cfg.batch_size]
        pos += cfg.batch_size
        loss = F.cross_entropy(model(x_Nx3xHxW[idx]), y_N[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def fingerprint(data_cfg: ImageDataConfig, cfg: ClassifierConfig) -> str:
    """sha256 of the image-set config and the classifier config: a stored classifier is reused only if equal."""
    text = json.dumps(normalize_json({"data": dataclasses.asdict(data_cfg), "classifier": dataclasses.asdict(cfg)}),
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _training_set(data_cfg: ImageDataConfig, cfg: ClassifierConfig, images):
    """-> (x, y, description of what they are)."""
    if data_cfg.data == "shapes":
        from synthetic.images import make_shapes

        seed = data_cfg.seed + FRESH_SEED_OFFSET + cfg.seed
        x, y, _ = make_shapes(cfg.n_fresh, data_cfg.size, seed)
        return to_tensor(x), torch.from_numpy(y), {
            "source": "fresh", "n": cfg.n_fresh, "seed": seed,
            "note": f"freshly drawn shapes (seed {seed}; the run's images use seed {data_cfg.seed})"}
    keep = [i for i, s in enumerate(images.train_ids) if "#copy" not in s]
    return to_tensor(images.train_NxHxWx3[keep]), torch.from_numpy(images.train_labels[keep]), {
        "source": "run-train", "n": len(keep), "seed": data_cfg.seed,
        "note": f"{data_cfg.data} is a fixed set, nothing fresh to draw: trained on the run's {len(keep)} unique "
                "training images; accuracy is on the held-out split, which it never saw (samples that copy "
                "training images are classified at about the fit accuracy, which is higher)"}


def _train_and_store(run: Path, data_cfg: ImageDataConfig, cfg: ClassifierConfig, status: str):
    images = load_images(data_cfg)
    x, y, trained_on = _training_set(data_cfg, cfg, images)
    num_classes = max(images.num_classes, int(y.max()) + 1, int(images.heldout_labels.max()) + 1)
    t0 = time.perf_counter()
    model = train_classifier(x, y, num_classes, cfg)
    seconds = time.perf_counter() - t0
    hx, hy = to_tensor(images.heldout_NxHxWx3), torch.from_numpy(images.heldout_labels)
    info = {"fingerprint": fingerprint(data_cfg, cfg), "data": dataclasses.asdict(data_cfg),
            "config": dataclasses.asdict(cfg), "num_classes": num_classes, "size": data_cfg.size,
            "class_names": list(images.class_names), "trained_on": trained_on,
            "fit_accuracy": class_consistency(model, x, y),
            "heldout_accuracy": class_consistency(model, hx, hy), "n_heldout": len(hy),
            "heldout_by_class": {str(k): v for k, v in class_consistency_by_class(model, hx, hy).items()},
            "train_seconds": seconds}
    tmp = Path(tempfile.mkdtemp(dir=run, prefix=f".{DIRNAME}."))
    try:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / WEIGHTS))
        write_json(tmp / META, info)
        shutil.rmtree(run / DIRNAME, ignore_errors=True)
        os.replace(tmp, run / DIRNAME)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return model, {**info, "status": status}


def _load(directory: Path, info: dict) -> ImageClassifier:
    meta, weights = directory / META, directory / WEIGHTS
    try:
        model = ImageClassifier(int(info["num_classes"]), int(info["size"]), int(info["config"]["width"]))
    except (KeyError, TypeError, ValueError) as e:
        raise UsageError(f"damaged classifier metadata {meta}: {error_reason(e)}") from None
    return load_weights(model, weights, "classifier")


def load_weights(model: ImageClassifier, weights: Path, what: str) -> ImageClassifier:
    """`model` with the safetensors file `weights`, in eval mode; a missing or damaged file is a one-line
    UsageError naming `what` and the file."""
    try:
        model.load_state_dict(load_file(str(weights)))
    except FileNotFoundError:
        raise UsageError(f"{what} weights {weights} do not exist") from None
    except (OSError, SafetensorError, RuntimeError) as e:
        raise UsageError(f"cannot load the {what} weights {weights}: {error_reason(e)}") from None
    return model.eval()


def ensure_classifier(run_dir: Path, data_cfg: ImageDataConfig, cfg: ClassifierConfig | None = None):
    """-> (classifier, info): the one stored in RUN/classifier/ when its fingerprint matches (info["status"]
    "loaded"), else one trained now and stored atomically ("trained", or "retrained: ..." when it replaced one
    of another config). A damaged stored file is a UsageError naming it."""
    run, cfg = Path(run_dir), cfg or ClassifierConfig()
    meta = run / DIRNAME / META
    if not meta.exists():
        return _train_and_store(run, data_cfg, cfg, "trained")
    info = read_json(meta)
    if not isinstance(info, dict) or not isinstance(info.get("fingerprint"), str):
        raise UsageError(f"damaged classifier metadata {meta}: expected an object with a 'fingerprint'")
    if info["fingerprint"] != fingerprint(data_cfg, cfg):
        old = {"data": info.get("data"), "config": info.get("config")}
        new = normalize_json({"data": dataclasses.asdict(data_cfg), "config": dataclasses.asdict(cfg)})
        differ = [f"{sec}.{k}" for sec in new for k in new[sec]
                  if not isinstance(old[sec], dict) or old[sec].get(k) != new[sec][k]]
        return _train_and_store(run, data_cfg, cfg, f"retrained: stored classifier had another "
                                                    f"{', '.join(differ) or 'fingerprint'}")
    return _load(run / DIRNAME, info), {**info, "status": "loaded"}
