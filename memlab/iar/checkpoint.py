"""Resumable training state without pickle: weights via save_pretrained (safetensors), AdamW moments in a
safetensors file, scheduler and progress in JSON. Each finished epoch is a directory
state/<stage>/epoch-NNNN/; state/<stage>/latest.json (written atomically, last) names the newest one."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from memlab.io import read_json, write_json


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


def latest_epoch(stage_dir: Path) -> int:
    f = stage_dir / "latest.json"
    return int(read_json(f)["epoch"]) if f.is_file() else 0


def load_stage(stage_dir: Path, module_cls, opt_factory, sched_factory):
    """-> (module, optimizer, scheduler, epoch) restored from the newest finished epoch."""
    epoch = latest_epoch(stage_dir)
    ep = stage_dir / f"epoch-{epoch:04d}"
    module = module_cls.from_pretrained(ep / "weights", low_cpu_mem_usage=False)
    opt = opt_factory(module)
    sched = sched_factory(opt)  # before loading: building a scheduler resets the groups' lr
    tensors = load_file(str(ep / "optimizer.safetensors"))
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        i, name = key.split(".", 1)
        state.setdefault(int(i), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": read_json(ep / "optimizer.json")["param_groups"]})
    sched.load_state_dict(read_json(ep / "scheduler.json"))
    return module, opt, sched, epoch
