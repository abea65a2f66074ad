"""The evaluation sets of a base run, fixed once and saved in it (RUN/evalsets.json), so every intervention
is scored on the same images:

- T, the targets: the planted duplicates when the image set has them; else a user's list of image ids;
  else half of the images the unedited model's extraction finds (drawn with a seed);
- C, the controls: images the unedited model regurgitates that are not in T (edits should spare them);
- H, held-out images: the run's held-out split (the first `n_heldout` of them).

Image ids are the run's training ids with planted copies folded (`pipeline.fold_duplicates`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from memlab.errors import UsageError
from memlab.io import read_json, write_json

FILE = "evalsets.json"
SOURCES = ("planted duplicates", "user list", "extracted, split at random")


@dataclass(frozen=True)
class EvalSets:
    target_ids: tuple[str, ...]
    control_ids: tuple[str, ...]
    n_heldout: int
    source: str  # one of SOURCES: how T was chosen
    base_extracted: tuple[str, ...]  # what the unedited model's extraction found (T and C come from it)
    seed: int = 0

    def __post_init__(self):
        overlap = sorted(set(self.target_ids) & set(self.control_ids))
        if overlap:
            raise UsageError(f"an image cannot be both target and control: {overlap[0]}")
        if not self.target_ids:
            raise UsageError("the target set is empty: the image set has no planted duplicates and the unedited "
                             "model extracts nothing; give targets by id or train longer")

    def to_json(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, raw, where: str) -> "EvalSets":
        keys = {"target_ids", "control_ids", "n_heldout", "source", "base_extracted", "seed"}
        if not isinstance(raw, dict) or set(raw) != keys:
            raise UsageError(f"damaged {where}: expected the keys {', '.join(sorted(keys))}")
        try:
            return cls(tuple(map(str, raw["target_ids"])), tuple(map(str, raw["control_ids"])),
                       int(raw["n_heldout"]), str(raw["source"]), tuple(map(str, raw["base_extracted"])),
                       int(raw["seed"]))
        except (TypeError, ValueError) as e:
            raise UsageError(f"damaged {where}: {e}") from None

    def rows(self, image_ids: np.ndarray, which: str) -> np.ndarray:
        """Rows of `image_ids` (the run's folded training ids) that hold set `which` ('target' | 'control')."""
        wanted = self.target_ids if which == "target" else self.control_ids
        index = {str(i): r for r, i in enumerate(image_ids)}
        missing = [i for i in wanted if i not in index]
        if missing:
            raise UsageError(f"{which} image {missing[0]!r} is not in this run's training set")
        return np.array([index[i] for i in wanted], dtype=np.int64)


def choose(image_ids: Sequence[str], copies: np.ndarray, extracted_ids: Sequence[str], n_heldout: int,
           targets: Sequence[str] | None = None, seed: int = 0) -> EvalSets:
    """T and C from the run's (folded) training ids, their copy counts and the ids the unedited model's
    extraction found; `targets` (image ids) overrides the default T."""
    ids = [str(i) for i in image_ids]
    extracted = [str(i) for i in extracted_ids]
    known = set(ids)
    if targets is not None:
        unknown = [t for t in targets if t not in known]
        if unknown:
            raise UsageError(f"target image {unknown[0]!r} is not in this run's training set")
        target, source = list(dict.fromkeys(map(str, targets))), "user list"
    elif (np.asarray(copies) > 1).any():
        target, source = [i for i, c in zip(ids, copies) if c > 1], "planted duplicates"
    else:
        rng = np.random.default_rng(seed)  # drawn from the training order: not from the extraction's ranking,
        in_order = sorted(set(extracted), key=ids.index)  # which near-tied scores can reorder
        shuffled = [in_order[i] for i in rng.permutation(len(in_order))]
        target, source = sorted(shuffled[: (len(shuffled) + 1) // 2], key=ids.index), SOURCES[2]
    control = [i for i in extracted if i not in set(target)]
    return EvalSets(tuple(target), tuple(control), int(n_heldout), source, tuple(extracted), int(seed))


def load(run: Path) -> EvalSets | None:
    path = Path(run) / FILE
    return EvalSets.from_json(read_json(path), str(path)) if path.is_file() else None


def fix(run: Path, sets: EvalSets) -> EvalSets:
    """Save `sets` in the run the first time; later calls return the saved sets, and refuse sets that
    differ from them (the point is that they never change), naming the difference."""
    saved = load(run)
    if saved is None:
        write_json(Path(run) / FILE, sets.to_json())
        return sets
    if saved != sets:
        diff = next(k for k in sets.to_json() if sets.to_json()[k] != saved.to_json()[k])
        raise UsageError(f"{Path(run) / FILE} fixes this run's evaluation sets and they differ in {diff}; "
                         "delete the file to choose them again (earlier scores then no longer compare)")
    return saved
