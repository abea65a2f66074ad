"""Captioned image sets: a folder of images and a captions file, one JSON object a line:

    {"file": "0001.png", "caption": "a red cab", "split": "train", "copies": 1}

`file` is relative to the folder; `split` is "train" (the default: images suspected to be in the model's
training data, the ones memorization is measured on) or "heldout" (images the model never saw, which calibrate
the extraction threshold); `copies` (default 1) says how often an image is known to be duplicated in the
training data, so extraction can report whether duplicates come first. Labels are caption ids: image i
(train rows first, then held-out rows) is conditioned on caption i.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memlab.errors import UsageError

SPLITS = ("train", "heldout")
KEYS = {"file", "caption", "split", "copies"}


@dataclass(frozen=True)
class CaptionRow:
    file: str
    caption: str
    split: str
    copies: int


@dataclass(frozen=True)
class CaptionSet:
    folder: Path
    captions_file: Path
    rows: tuple[CaptionRow, ...]

    def split(self, name: str) -> list[CaptionRow]:
        return [r for r in self.rows if r.split == name]


def _row(obj, where: str, folder: Path) -> CaptionRow:
    if not isinstance(obj, dict):
        raise UsageError(f"{where}: expected a JSON object with \"file\" and \"caption\", got {type(obj).__name__}")
    unknown = sorted(set(obj) - KEYS)
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(KEYS))}")
    file, caption = obj.get("file"), obj.get("caption")
    if not isinstance(file, str) or not file:
        raise UsageError(f"{where}: \"file\" must be a non-empty string (an image in {folder})")
    if not isinstance(caption, str):
        raise UsageError(f"{where}: \"caption\" must be a string, got {caption!r}")
    split = obj.get("split", "train")
    if split not in SPLITS:
        raise UsageError(f"{where}: \"split\" must be one of {', '.join(SPLITS)}, got {split!r}")
    copies = obj.get("copies", 1)
    if not isinstance(copies, int) or isinstance(copies, bool) or copies < 1:
        raise UsageError(f"{where}: \"copies\" must be an integer >= 1, got {copies!r}")
    path = folder / file
    if Path(file).is_absolute() or ".." in Path(file).parts:
        raise UsageError(f"{where}: \"file\" must be a path inside {folder}, got {file!r}")
    if not path.is_file():
        raise UsageError(f"{where}: no image {path}")
    return CaptionRow(file, caption, split, copies)


def read_caption_set(folder: str | Path, captions_file: str | Path | None = None) -> CaptionSet:
    """Check the folder and its captions file (default FOLDER/captions.jsonl) without decoding any image."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"--images {folder}: no such directory")
    cap = Path(captions_file) if captions_file is not None else folder / "captions.jsonl"
    if not cap.is_file():
        raise UsageError(f"no captions file {cap} (one JSON line per image: {{\"file\": ..., \"caption\": ...}}); "
                         "give it with --captions")
    try:
        lines = cap.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read the captions file {cap}: {e}") from None
    rows, seen = [], set()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{cap}:{n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise UsageError(f"{where}: malformed JSON ({e.msg})") from None
        row = _row(obj, where, folder)
        if row.file in seen:
            raise UsageError(f"{where}: {row.file} is listed twice")
        seen.add(row.file)
        rows.append(row)
    cs = CaptionSet(folder, cap, tuple(rows))
    n_train, n_held = len(cs.split("train")), len(cs.split("heldout"))
    if n_train < 2 or n_held < 1:
        raise UsageError(f"{cap} lists {n_train} train and {n_held} held-out images; needs at least 2 train images "
                         "(UnitMem compares images) and 1 held-out image (it calibrates the extraction threshold)")
    return cs


def load_image(path: Path, side: int) -> np.ndarray:
    """side x side x 3 float32 in [0, 1]: the largest centred square, resized (bicubic)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            s = min(w, h)
            im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
            if s != side:
                im = im.resize((side, side), Image.BICUBIC)
            return np.asarray(im, dtype=np.float32) / 255.0
    except (OSError, UnidentifiedImageError) as e:
        raise UsageError(f"cannot read the image {path}: {e}") from None


def caption_run_data(cs: CaptionSet, side: int, progress: bool = True):
    """-> (RunData with captions, captions list): images at side x side, labels = caption ids (train rows
    first, then held-out rows). A progress bar on stderr while the images are read."""
    import torch
    from tqdm.auto import tqdm

    from memlab.iar.pipeline import RunData

    train, held = cs.split("train"), cs.split("heldout")
    bar = tqdm(total=len(cs.rows), desc="images", unit="img", disable=not progress or len(cs.rows) < 256)

    def tensor(rows):
        images = []
        for r in rows:
            images.append(load_image(cs.folder / r.file, side))
            bar.update(1)
        arr = np.stack(images)
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2)))

    train_x, held_x = tensor(train), tensor(held)
    bar.close()
    texts = [r.caption for r in (*train, *held)]
    data = RunData(train_x, torch.arange(len(train)), np.array([r.file for r in train]),
                   np.array([r.copies for r in train]), held_x, torch.arange(len(train), len(texts)),
                   captions=np.array(texts[:len(train)], dtype=object))
    return data, texts
