"""Checkpoint merging (Ruan et al.'s mitigation of over-memorization): the weights of several saved epochs of one
run, averaged, as a new run directory that every IAR command opens like a trained run.

The average is a plain mean of the state dicts, accumulated in float64 and cast back to each tensor's dtype
(float32): the mean of K copies of one float32 tensor is that tensor bit for bit. Integer buffers must agree.

The new run: config.json of the source run (kind iar-train), the source's tokenizer (saved again, the same
weights), model/ (the average), and metrics.json with one model row (the merged model measured like a training
epoch, under the last merged epoch) and `merged` (source run and epochs). It has no optimizer state: resuming it
trains nothing.
"""

from __future__ import annotations

from pathlib import Path

import torch

from memlab.errors import UsageError


def available_epochs(run: str | Path) -> list[int]:
    """The saved checkpoint epochs of a finished run and its final epoch, ascending (unfinished: a UsageError)."""
    from memlab.iar.load import run_stage
    from memlab.iar.stages import saved_epochs

    return sorted(set(saved_epochs(run)) | {run_stage(run, stage="final").epoch})


def choose_epochs(run: str | Path, last: int | None = None, steps: tuple[int, ...] | None = None) -> list[int]:
    """`--last K` (the K latest of the available epochs) or `--steps a,b,...` (those epochs); one-line errors."""
    have = available_epochs(run)
    listing = ", ".join(map(str, have))
    if (last is None) == (not steps):
        raise UsageError("give --last K or --steps EPOCH,EPOCH,..., not both and not neither")
    if last is not None:
        if isinstance(last, bool) or not isinstance(last, int) or not 1 <= last <= len(have):
            raise UsageError(f"--last must be an integer in [1, {len(have)}] (the run has the epochs {listing}), "
                             f"got {last!r}")
        return have[-last:]
    unknown = [s for s in steps if s not in have]
    if unknown:
        raise UsageError(f"--steps: no checkpoint of epoch {unknown[0]} in {run}; saved: {listing}")
    if len(set(steps)) != len(steps):
        raise UsageError(f"--steps must not repeat an epoch, got {','.join(map(str, steps))}")
    return sorted(steps)


def average_state_dicts(states: list[dict]) -> dict:
    """The mean of K state dicts with the same keys (float64 accumulation, cast back); integer tensors must be
    equal in all of them."""
    if not states:
        raise ValueError("nothing to average")
    keys = list(states[0])
    for s in states[1:]:
        if list(s) != keys:
            raise UsageError("the checkpoints to merge have different parameters: not one model")
    out = {}
    for k in keys:
        first = states[0][k]
        if first.is_floating_point():
            acc = torch.zeros(first.shape, dtype=torch.float64)
            for s in states:
                acc += s[k].to(torch.float64)
            out[k] = (acc / len(states)).to(first.dtype)
        else:
            if any(not torch.equal(s[k], first) for s in states[1:]):
                raise UsageError(f"cannot merge: the integer buffer {k} differs between checkpoints")
            out[k] = first.clone()
    return out


def _model_dir(run: Path, epoch: int) -> Path:
    from memlab.iar.load import run_stage

    final = run_stage(run, stage="final")
    return final.model_dir if epoch == final.epoch else run_stage(run, checkpoint=epoch).model_dir


@torch.no_grad()
def _measure(model, run: Path) -> dict:
    """train / held-out NLL and accuracy and the targets' accuracy, as a training epoch's row."""
    from memlab.iar.batching import tokenize_all
    from memlab.iar.load import load_run_data, read_run_config
    from memlab.iar.train import eval_model, target_rows

    train_x, train_y, heldout_x, heldout_y, ids = load_run_data(run)
    rows, _ = target_rows(ids, read_run_config(run).train.targets)
    row = eval_model(model, (tokenize_all(model, train_x), train_y), (tokenize_all(model, heldout_x), heldout_y), rows)
    model.eval()
    return row


def merge_run(run: str | Path, epochs: list[int], out: str | Path) -> dict:
    """Average the model weights of `epochs` of `run` into the new run directory `out`; -> its metrics."""
    from memlab.iar.checkpoint import copy_published, load_pretrained, publish
    from memlab.iar.load import read_run_config
    from memlab.iar.models import MODEL_CLASSES
    from memlab.iar.tokenizer import ImageTokenizer
    from memlab.rundir import RunDir

    run = Path(run)
    cfg = read_run_config(run)
    rd, _ = RunDir.open(out, "iar-train")  # a fresh directory only; checked before anything is written
    cls = MODEL_CLASSES[cfg.train.arch]
    models = [load_pretrained(cls, _model_dir(run, e), f"model of epoch {e}") for e in epochs]
    tok = load_pretrained(ImageTokenizer, run / "tokenizer", "tokenizer")
    merged = models[0]
    merged.load_state_dict(average_state_dicts([m.state_dict() for m in models]))
    merged.attach_tokenizer(tok.eval())
    merged.eval()
    row = {"epoch": epochs[-1], **_measure(merged, run)}
    rd.start(cfg.to_dict())
    copy_published(run / "tokenizer", rd.path / "tokenizer")  # byte for byte
    publish(merged, rd.path / "model")
    metrics = {"tokenizer": [], "model": [row], "final": {"tokenizer": {}, "model": row},
               "memorized_acc": cfg.train.memorized_acc, "memorized_epoch": None, "stopped_epoch": None,
               "checkpoints": [], "merged": {"from": str(run.resolve()), "epochs": list(epochs),
                                             "how": "mean of the state dicts (float64 accumulation, cast back)"}}
    rd.finish(metrics)
    return metrics
