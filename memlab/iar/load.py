"""Open a trained IAR run directory: the model (with its tokenizer attached, eval mode) and its data.

Run directory layout (written by memlab.iar.train):
  config.json        {"kind": "iar-train", "data": ImageDataConfig, "train": IARTrainConfig} (memlab.rundir)
  metrics.json       per-epoch losses of both stages and `final`; written last
  tokenizer/         ImageTokenizer.save_pretrained (safetensors)
  model/             the IAR model's save_pretrained (safetensors)
  state/             history.json and the optimizer state of each stage's last epoch (resume)

A derived run (kind iar-unlearn: memlab.iar.mitigate.unlearn) has the same layout and loads the same way; its
config.json also records, under "derived", what it was made from and how.
"""

from __future__ import annotations

from pathlib import Path

from memlab.errors import UsageError
from memlab.iar.config import RunConfig
from memlab.io import read_json

MODEL_KINDS = ("iar-train", "iar-unlearn")  # run kinds that hold a trained IAR model (tokenizer/, model/)


def model_run(path: str | Path, what: str = "RUN"):
    """The RunDir of a directory that holds an IAR model (one of MODEL_KINDS); else a one-line UsageError."""
    from memlab.rundir import KINDS, RunDir, describe, kind_of

    p = Path(path)
    if not p.is_dir():
        raise UsageError(f"{what} {p} does not exist or is not a directory")
    found = kind_of(p)
    if found not in MODEL_KINDS:
        raise UsageError(f"{what} {p} is a {describe(found)}, not a {' or '.join(KINDS[k] for k in MODEL_KINDS)}")
    return RunDir(p, found)


def read_run_config(path: str | Path) -> RunConfig:
    run = Path(path)
    if not run.is_dir():
        raise UsageError(f"run directory does not exist: {run}")
    cfg_file = run / "config.json"
    if not cfg_file.is_file():
        raise UsageError(f"{run} is not an IAR run directory (no config.json); create one with `memlab iar train --out {run}`")
    raw = read_json(cfg_file)  # damage is a UsageError naming the file
    if isinstance(raw, dict) and raw.get("kind") == "iar-external":
        raise UsageError(f"{run} is the work directory of an external model ({raw.get('external', {}).get('model')}); "
                         "it has no memlab training config (this needs a run from `memlab iar train`)")
    if not isinstance(raw, dict):
        raise UsageError(f"malformed {cfg_file}: expected a JSON object, got {type(raw).__name__}")
    return RunConfig.from_dict({k: v for k, v in raw.items() if k != "derived"}, str(cfg_file))


def load_run(path: str | Path, stage=None):
    """-> IARModel (NextScaleTransformer / RasterTransformer / MaskedTokenModel) with its tokenizer, in eval
    mode, on CPU: the final weights, or those of `stage` (memlab.iar.stages.Stage: a saved checkpoint).
    Damaged weights (truncated, overwritten, another model's) are a UsageError naming them. An external model's
    work directory (`--model diffusers:PATH`) loads its pipeline (memlab.iar.adapters), captions set."""
    if _external(path):
        from memlab.iar.adapters.external import load_work_dir

        return load_work_dir(path)[0]
    from memlab.iar.checkpoint import load_pretrained
    from memlab.iar.models import MODEL_CLASSES
    from memlab.iar.tokenizer import ImageTokenizer

    run = Path(path)
    cfg = read_run_config(run)
    for part in ("tokenizer", "model") if stage is None else ("tokenizer",):
        if not (run / part / "config.json").is_file():
            raise UsageError(f"{run} has no trained {part} yet (missing {run / part}); finish it with "
                             f"`memlab iar train --out {run} --resume`")
    tok = load_pretrained(ImageTokenizer, run / "tokenizer", "tokenizer")
    where, what = (run / "model", "model") if stage is None else (stage.model_dir, f"model of epoch {stage.epoch}")
    model = load_pretrained(MODEL_CLASSES[cfg.train.arch], where, what)
    model.attach_tokenizer(tok.eval())
    return model.eval()


def run_stage(path: str | Path, checkpoint: int | None = None, stage: str | None = None):
    """The run's stage that `--checkpoint` / `--stage` name (the final one by default): memlab.iar.stages."""
    from memlab.iar.stages import resolve_stage

    return resolve_stage(path, read_run_config(path).train.codebook_size, checkpoint, stage)


def load_run_data(path: str | Path):
    """-> (train images N x 3 x H x W float in [0,1], train labels N long, held-out images, held-out labels,
    train image ids), rebuilt from the run's config.json (image-set spec + seed); for an external model's work
    directory, its captioned image set (labels: caption ids, ids: file names)."""
    if _external(path):
        from memlab.iar.adapters.external import work_dir_data

        d = work_dir_data(path)
        return d.train_images, d.train_labels, d.heldout_images, d.heldout_labels, list(d.train_ids)
    from memlab.iar.data import image_set_tensors

    cfg = read_run_config(path)
    return image_set_tensors(cfg.data)


def _external(path) -> bool:
    from memlab.iar.adapters import KIND
    from memlab.rundir import kind_of

    return Path(path).is_dir() and kind_of(Path(path)) == KIND
