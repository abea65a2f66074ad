"""Resumable training state without pickle: weights via save_pretrained (safetensors), AdamW moments in a
safetensors file, scheduler and progress in JSON. Each finished epoch is a directory
state/<stage>/epoch-NNNN/; state/<stage>/latest.json (written atomically, last) names the newest one.
Loading damaged state (truncated, overwritten or missing files, weights of another model) is a UsageError
whose one line names the file; nothing is written before it is raised."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from memlab.errors import UsageError
from memlab.io import error_reason, read_json, write_json


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors = {f"{i}.{k}": v.detach().cpu().contiguous() for i, st in sd["state"].items() for k, v in st.items()}
    return tensors, {"param_groups": sd["param_groups"]}


def save_stage(stage_dir: Path, epoch: int, module, opt, sched, extra: dict | None = None) -> None:
    ep = stage_dir / f"epoch-{epoch:04d}"
    if ep.exists():
        shutil.rmtree(ep)
    module.save_pretrained(ep / "weights", safe_serialization=True)
    tensors, groups = _optimizer_tensors(opt)
    save_file(tensors, str(ep / "optimizer.safetensors"))
    write_json(ep / "optimizer.json", groups)
    write_json(ep / "scheduler.json", sched.state_dict())
    write_json(stage_dir / "latest.json", {"epoch": epoch, **(extra or {})})
    for old in stage_dir.glob("epoch-*"):  # keep only the newest finished epoch
        if old != ep:
            shutil.rmtree(old, ignore_errors=True)


def publish(module, dest: Path) -> None:
    """module.save_pretrained into `dest`, atomically: a temporary sibling folder, then a rename."""
    dest = Path(dest)
    tmp = dest.parent / f".{dest.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    module.save_pretrained(tmp, safe_serialization=True)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)


def copy_published(src: Path, dest: Path) -> None:
    """Byte-for-byte copy of a published file or folder (a base run's tokenizer/, evalsets.json, ...) to `dest`,
    atomically (a temporary sibling, then a rename); nothing happens when `dest` exists or `src` does not."""
    src, dest = Path(src), Path(dest)
    if dest.exists() or not src.exists():
        return
    tmp = dest.parent / f".{dest.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp) if src.is_dir() else shutil.copyfile(src, tmp)
    os.replace(tmp, dest)


def load_pretrained(cls, directory: Path, what: str = "weights"):
    """`cls.from_pretrained(directory)` (a diffusers ModelMixin saved with safetensors, on CPU), refusing
    what diffusers would only warn about: weights that leave parameters of `cls` uninitialised. A missing
    or damaged file is a UsageError naming it."""
    from diffusers.utils import SAFETENSORS_WEIGHTS_NAME
    from safetensors import safe_open

    directory = Path(directory)
    read_json(directory / "config.json")  # missing or malformed: its own one-line error
    weights = directory / SAFETENSORS_WEIGHTS_NAME
    if not weights.is_file():
        raise UsageError(f"cannot load the {what} in {directory}: {weights.name} is missing")
    try:
        with safe_open(str(weights), "pt"):  # reads the header; checks that the data covers the whole file
            pass
        module, info = cls.from_pretrained(directory, low_cpu_mem_usage=False, output_loading_info=True)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as e:
        raise UsageError(f"cannot load the {what} {weights}: {error_reason(e)}") from None
    missing = info.get("missing_keys") or []
    if missing:
        raise UsageError(f"cannot load the {what} {weights}: it lacks {len(missing)} parameters of "
                         f"{cls.__name__} (e.g. {min(missing)}): weights of another model")
    return module


def latest_epoch(stage_dir: Path) -> int:
    """The newest finished epoch that latest.json names; 0 when there is none."""
    f = stage_dir / "latest.json"
    if not f.is_file():
        return 0
    saved = read_json(f)
    epoch = saved.get("epoch") if isinstance(saved, dict) else None
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise UsageError(f"damaged {f}: expected {{\"epoch\": <integer >= 0>, ...}}, got {str(saved)[:80]}")
    return epoch


def _load_moments(path: Path, opt: torch.optim.Optimizer) -> dict[int, dict[str, torch.Tensor]]:
    """AdamW's per-parameter state, checked against the parameters it belongs to."""
    try:
        tensors = load_file(str(path))
    except (OSError, SafetensorError) as e:
        raise UsageError(f"cannot load the optimizer state {path}: {error_reason(e)}") from None
    params = [p for group in opt.param_groups for p in group["params"]]
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        i, _, name = key.partition(".")
        if not (i.isdigit() and name and int(i) < len(params)):
            raise UsageError(f"cannot load the optimizer state {path}: unexpected tensor {key!r}")
        p = params[int(i)]
        if name in ("exp_avg", "exp_avg_sq") and v.shape != p.shape:
            raise UsageError(f"cannot load the optimizer state {path}: {key} has shape {tuple(v.shape)}, its "
                             f"parameter {tuple(p.shape)}; it belongs to another model")
        state.setdefault(int(i), {})[name] = v
    return state


def _kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {list: "a list", tuple: "a list", dict: "an object", str: "a string"}.get(type(value), type(value).__name__)


def _mismatch(saved, fresh, where: str = "") -> str | None:
    """Where JSON-read state departs in structure from `fresh`, the state of a newly built optimizer or
    scheduler: another kind of value under a key both have, or a list of another length. None: it fits."""
    if fresh is None:
        return None
    if _kind(saved) != _kind(fresh):
        return f"{where or 'the file'} holds {_kind(saved)}, expected {_kind(fresh)}"
    if isinstance(fresh, dict):
        pairs = [(f"{where}.{k}" if where else str(k), saved[k], fresh[k]) for k in fresh if k in saved]
    elif isinstance(fresh, (list, tuple)):
        if len(saved) != len(fresh):
            return f"{where or 'the file'} has {len(saved)} entries, expected {len(fresh)}"
        pairs = [(f"{where}[{i}]", a, b) for i, (a, b) in enumerate(zip(saved, fresh))]
    else:
        return None
    return next((m for w, a, b in pairs if (m := _mismatch(a, b, w))), None)


def _load_json_state(path: Path, fresh: dict, load, what: str) -> None:
    """load(the JSON in `path`), refusing state whose structure does not fit `fresh`."""
    saved = read_json(path)
    problem = _mismatch(saved, fresh)
    if problem:
        raise UsageError(f"damaged {what} {path}: {problem}")
    try:
        load(saved)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise UsageError(f"damaged {what} {path}: {error_reason(e)}") from None


def load_stage(stage_dir: Path, module_cls, opt_factory, sched_factory):
    """-> (module, optimizer, scheduler, epoch) restored from the newest finished epoch."""
    epoch = latest_epoch(stage_dir)
    ep = stage_dir / f"epoch-{epoch:04d}"
    if not ep.is_dir():
        raise UsageError(f"damaged training state: {stage_dir / 'latest.json'} names epoch {epoch}, but {ep} "
                         "does not exist")
    module = load_pretrained(module_cls, ep / "weights")
    opt = opt_factory(module)
    sched = sched_factory(opt)  # before loading: building a scheduler resets the groups' lr
    moments = _load_moments(ep / "optimizer.safetensors", opt)
    _load_json_state(ep / "optimizer.json", {"param_groups": opt.state_dict()["param_groups"]},
                     lambda saved: opt.load_state_dict({"state": moments, "param_groups": saved["param_groups"]}),
                     "optimizer state")
    _load_json_state(ep / "scheduler.json", sched.state_dict(), sched.load_state_dict, "scheduler state")
    return module, opt, sched, epoch
