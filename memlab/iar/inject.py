"""INJ, an injected ground truth (Chang et al., NAACL 2024, carried to image generators): a trained model is
fine-tuned on new images, with gradients reaching only the OUTGOING weights of a random subset of its MLP units
(column u of the projection that reads the hidden layer; every other parameter frozen, bit for bit), until each
injected image is reproduced from its prefix (greedy continuation from model.default_prefix() equals its tokens).
Those units then hold the injected images by construction: a localizer should rank them first.

The new images come from the run's held-out split (never trained on); the localizers keep the rest of it as
their held-out images. Shape letters: B injected images, L tokens, D width, U units of a layer.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import torch
from torch import nn

from memlab.errors import UsageError
from memlab.iar.batching import continue_all
from memlab.iar.config import InjectConfig
from memlab.iar.evalsets import EvalSets
from memlab.iar.interface import IARModel
from memlab.iar.localizers.common import unit_table
from memlab.iar.pipeline import RunData
from memlab.iar.train import epoch_generator

PREFIX = "inject"  # ids of injected images: inject:<row of the held-out split>


def all_units(model: IARModel) -> pd.DataFrame:
    """Every MLP unit of the model, in units() order: layer, block, unit (the localizers' table without scores)."""
    return unit_table(model, {name: np.zeros(spec.weight.shape[0]) for name, spec in model.units().items()}
                      )[["layer", "block", "unit"]]


def draw_injection(model: IARModel, n_heldout: int, n_images: int, fraction: float, seed: int
                   ) -> tuple[np.ndarray, pd.DataFrame]:
    """(rows of the held-out split to inject, the units whose outgoing weights may change: a uniform draw of
    max(1, round(fraction * N)) of all N units). A seed gives the same images at every fraction, and the units
    of a smaller fraction are the first of a larger one's."""
    if n_heldout <= n_images:
        raise UsageError(f"INJ draws its {n_images} images from the run's held-out split, which has {n_heldout}; "
                         "it needs at least one more (kept as the localizers' held-out set): inject fewer images "
                         "or train a run with a larger --n-heldout")
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n_heldout, n_images, replace=False))
    units = all_units(model)
    k = max(1, int(round(fraction * len(units))))
    chosen = np.sort(rng.permutation(len(units))[:k])
    return rows, units.iloc[chosen].reset_index(drop=True)


def outgoing(model: IARModel) -> dict[str, nn.Linear]:
    """Per unit layer, the Linear that reads its hidden activation (weight D x U: column u is unit u's outgoing
    weights), found by one probe pass: the first Linear whose input is the unit module's output itself."""
    specs, last, found, handles = model.units(), {}, {}, []

    def on_unit(name):
        return lambda _m, _i, out: last.update(name=name, out=out)

    def on_linear(mod, args):
        if last.get("out") is not None and args and args[0] is last["out"]:
            found.setdefault(last["name"], mod)
            last["out"] = None
    try:
        handles += [spec.module.register_forward_hook(on_unit(name)) for name, spec in specs.items()]
        handles += [m.register_forward_pre_hook(on_linear) for m in model.modules() if isinstance(m, nn.Linear)]
        tokens_1xL = torch.zeros(1, model.seq_len, dtype=torch.long, device=model.device)
        with torch.no_grad():
            model.teacher_forced_logits(tokens_1xL, torch.zeros(1, dtype=torch.long, device=model.device))
    finally:
        for h in handles:
            h.remove()
    for name, spec in specs.items():
        lin = found.get(name)
        if lin is None or lin.weight.shape[1] != spec.weight.shape[0]:
            raise UsageError(f"INJ cannot find the projection that reads {name} ({spec.path}) in this model")
    return found


def reproduced_B(model: IARModel, tokens_BxL: torch.Tensor, labels_B: torch.Tensor, batch_size: int = 64
                 ) -> np.ndarray:
    """Bool B: greedy continuation from model.default_prefix() gives back every token of the image."""
    cont_BxL = continue_all(model, tokens_BxL, labels_B, model.default_prefix(), batch_size)
    return (cont_BxL == tokens_BxL).all(1).cpu().numpy()


def inject(model: IARModel, tokens_BxL: torch.Tensor, labels_B: torch.Tensor, units: pd.DataFrame,
           cfg: InjectConfig, seed: int, progress: bool = True) -> dict:
    """Fine-tune `model` IN PLACE on the B sequences with its own training objective (model.training_loss;
    Adam, no weight decay, gradients clipped at norm 1), only the outgoing weights of `units` free; stops at
    the first epoch after which every sequence is reproduced, else after cfg.max_epochs. Randomness (batch
    order, the objective's draws) from train.epoch_generator(seed, "model", epoch). A progress bar on stderr
    counts epochs (with the images reproduced so far). -> metrics."""
    from tqdm.auto import tqdm

    proj = outgoing(model)
    free = {name: torch.zeros(lin.weight.shape[1], dtype=torch.bool) for name, lin in proj.items()}
    for name, u in zip(units["layer"], units["unit"]):
        free[name][int(u)] = True
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    flags = {p: p.requires_grad for p in model.parameters()}
    weights = [proj[name].weight for name, m in free.items() if m.any()]
    masks = [free[name].to(proj[name].weight.device) for name, m in free.items() if m.any()]
    opt = torch.optim.Adam(weights, lr=cfg.lr, weight_decay=0.0)
    B, epochs, done = len(tokens_BxL), 0, np.zeros(len(tokens_BxL), dtype=bool)
    try:
        for p in model.parameters():
            p.requires_grad_(False)
        for w in weights:
            w.requires_grad_(True)
        bar = tqdm(total=cfg.max_epochs, desc="INJ fine-tune", unit="epoch", disable=not progress, leave=False)
        for epochs in range(1, cfg.max_epochs + 1):
            g = epoch_generator(seed, "model", epochs - 1)
            model.train()
            for idx in torch.randperm(B, generator=g).split(cfg.batch_size):
                opt.zero_grad(set_to_none=True)
                model.training_loss(tokens_BxL[idx], labels_B[idx], g).backward()
                for w, m_U in zip(weights, masks):  # exact zeros: Adam then leaves those columns as they are
                    w.grad.masked_fill_(~m_U[None, :], 0.0)
                torch.nn.utils.clip_grad_norm_(weights, 1.0)
                opt.step()
            model.eval()
            done = reproduced_B(model, tokens_BxL, labels_B)
            bar.update(1)
            bar.set_postfix(reproduced=f"{int(done.sum())}/{B}")
            if done.all():
                break
        bar.close()
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)
        model.eval()
    changed = changed_outside(before, model, proj, free)
    if changed:  # the guarantee INJ rests on; a failure here is a bug, not bad input
        raise RuntimeError(f"INJ changed weights it had frozen: {changed[0]}")
    return {"epochs": epochs, "stopped": "reproduced" if done.all() else "max_epochs",
            "n_reproduced": int(done.sum()), "n_images": B, "n_units": len(units)}


def changed_outside(before: dict[str, torch.Tensor], model: nn.Module, proj: dict[str, nn.Linear],
                    free: dict[str, torch.Tensor]) -> list[str]:
    """State entries that differ bit for bit from `before`, outside the free outgoing columns (a projection
    weight is named 'KEY (outside the free columns)')."""
    allowed = {id(lin.weight): free[name] for name, lin in proj.items()}
    out = []
    for key, now in model.state_dict(keep_vars=True).items():  # keep_vars: the parameters themselves
        old, mask, now = before[key], allowed.get(id(now)), now.detach()
        if mask is None and not torch.equal(now, old):
            out.append(key)
        elif mask is not None and not torch.equal(now[:, ~mask], old[:, ~mask]):
            out.append(f"{key} (outside the free columns)")
    return out


def injected_data(data: RunData, rows: np.ndarray) -> tuple[RunData, EvalSets]:
    """The injected model's data and evaluation sets: the injected images join the training images (ids
    inject:<row>) and are the targets; the held-out split keeps its other images; no controls."""
    keep = np.setdiff1d(np.arange(len(data.heldout_images)), rows)
    ids = np.array([f"{PREFIX}:{r}" for r in rows])
    r, k = torch.as_tensor(rows), torch.as_tensor(keep)
    new = RunData(torch.cat([data.train_images, data.heldout_images[r]]),
                  torch.cat([data.train_labels, data.heldout_labels[r]]),
                  np.concatenate([data.train_ids, ids]), np.concatenate([data.copies, np.ones(len(rows), int)]),
                  data.heldout_images[k], data.heldout_labels[k])
    return new, EvalSets(tuple(ids), (), len(keep), "injected", ())


def state_digest(model: nn.Module) -> str:
    """A fingerprint of a model's weights: an injected model is reused only on the base it came from."""
    h = hashlib.sha1()
    for key, t in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]
