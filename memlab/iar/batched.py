"""Batched evaluation of E unit edits: instead of E passes one after another (apply edit e, evaluate,
restore), the inputs are stacked E times on the batch axis and each batch row gets its own edit through
forward hooks: a row's unit pre-activations are multiplied by its edit's `scale_U` (on the unit layer's
`pre_module`; scaling unit u's incoming weights and bias by f is scaling its pre-activation by f), and its
activations are replaced where `replace_U` (on the unit module). The hooks act per row and per position,
so they compose with anything a model does along the sequence axis, the raster and next-scale KV caches
included.

Shape letters: E edits, B inputs (sequences, labels, seeds), R rows of one forward pass, L tokens,
U units of a layer, C outputs of its pre-module (C >= U; GEGLU's proj has 2U).

Results are E x B: entry [e, i] is what the one-at-a-time run of edit e gives for input i (sample i of
edit e uses seeds[i], as `model.generate` does). `batch_size` bounds the rows of one forward pass (E x B
rows are cut into chunks of at most that many, a chunk may mix edits) and changes only speed and memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import numpy as np
import torch

from memlab.errors import UsageError
from memlab.iar.batching import teacher_forced_scores
from memlab.iar.interface import IARModel
from memlab.iar.interventions.base import Edit, RowEdit

EditLike = Edit | Mapping[str, RowEdit]  # an Edit, or its row edits by unit-layer name ({} = unedited)


def _as_rows(model: IARModel, edit: EditLike) -> Mapping[str, RowEdit]:
    return edit.row_edits(model) if isinstance(edit, Edit) else edit


class RowEditHooks:
    """Forward hooks applying edit `edit_R[r]` (an index into the E edits) to batch row r. Only layers that
    some edit scales get a pre-activation hook, only layers that some edit replaces get an activation hook.
    `assign(edit_R)` says which edit each row of the next forward passes gets."""

    def __init__(self, model: IARModel, edits_E: Sequence[EditLike]):
        specs = model.units()
        rows_E = [_as_rows(model, e) for e in edits_E]
        self.n_edits = len(rows_E)
        self.edit_R: torch.Tensor | None = None
        self._layers = []  # (spec, scale_ExU | None, replace_ExU | None, value_ExU)
        self._handles = []
        self._now: dict[int, tuple] = {}  # layer -> per-row tensors of the current assignment
        self._mult: dict[int, torch.Tensor] = {}  # layer -> R x 1 x C multiplier of the pre-module output
        for e, rows in enumerate(rows_E):
            unknown = [n for n in rows if n not in specs]
            if unknown:
                raise UsageError(f"edit {e}: unknown unit layer {unknown[0]!r}; allowed: {', '.join(specs)}")
        dev = model.device
        for name, spec in (specs.items() if rows_E else ()):
            U = spec.weight.shape[0]
            mine = [rows.get(name) for rows in rows_E]
            for e, r in enumerate(mine):
                if r is not None and not (len(r.scale_U) == len(r.replace_U) == len(r.value_U) == U):
                    raise UsageError(f"edit {e}: row edit of {name} must have {U} units, got "
                                     f"{len(r.scale_U)} / {len(r.replace_U)} / {len(r.value_U)}")
            ident = RowEdit.identity(U)
            mine = [ident if r is None else r for r in mine]
            scale_ExU = torch.stack([r.scale_U.float() for r in mine])
            replace_ExU = torch.stack([r.replace_U.bool() for r in mine])
            value_ExU = torch.stack([r.value_U.float() for r in mine])
            scales, replaces = bool((scale_ExU != 1).any()), bool(replace_ExU.any())
            if scales or replaces:
                self._layers.append((spec, scale_ExU.to(dev) if scales else None,
                                     replace_ExU.to(dev) if replaces else None, value_ExU.to(dev)))

    def assign(self, edit_R: torch.Tensor) -> None:
        """Rows of the following forward passes: row r gets edit edit_R[r] (long R, values in [0, E))."""
        edit_R = torch.as_tensor(edit_R, dtype=torch.long)
        if edit_R.ndim != 1 or (len(edit_R) and not 0 <= int(edit_R.min()) <= int(edit_R.max()) < self.n_edits):
            raise ValueError(f"edit_R must be a 1-d index into {self.n_edits} edits, got {edit_R.tolist()}")
        self.edit_R = edit_R
        self._mult = {}
        for k, (_, scale_ExU, replace_ExU, value_ExU) in enumerate(self._layers):
            idx = edit_R.to(value_ExU.device)
            self._now[k] = (None if scale_ExU is None else scale_ExU[idx],
                            None if replace_ExU is None else replace_ExU[idx], value_ExU[idx])

    def attach(self) -> None:
        for k, (spec, scale_ExU, replace_ExU, _) in enumerate(self._layers):
            if scale_ExU is not None:
                self._handles.append(spec.pre_module.register_forward_hook(self._scale_hook(k)))
            if replace_ExU is not None:
                self._handles.append(spec.module.register_forward_hook(self._replace_hook(k)))

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def _rows(self, k: int, out: torch.Tensor) -> tuple:
        if self.edit_R is None:
            raise RuntimeError("row edits: assign(edit_R) before running the model")
        if out.shape[0] != len(self.edit_R):
            raise RuntimeError(f"row edits assigned to {len(self.edit_R)} rows, the forward pass has "
                               f"{out.shape[0]}")
        return self._now[k]

    def _scale_hook(self, k: int) -> Callable:
        def hook(_module, _inputs, out_RxLxC):
            scale_RxU = self._rows(k, out_RxLxC)[0]
            mult = self._mult.get(k)
            if mult is None or mult.shape[-1] != out_RxLxC.shape[-1] or mult.dtype != out_RxLxC.dtype:
                R, U, C = out_RxLxC.shape[0], scale_RxU.shape[1], out_RxLxC.shape[-1]
                if C > U:  # channels past the units (GEGLU's gate) are left alone
                    scale_RxU = torch.cat([scale_RxU, scale_RxU.new_ones(R, C - U)], 1)
                mult = self._mult[k] = scale_RxU.to(out_RxLxC.dtype).view(R, *([1] * (out_RxLxC.ndim - 2)), C)
            if out_RxLxC.requires_grad and torch.is_grad_enabled():
                return out_RxLxC * mult
            return out_RxLxC.mul_(mult)  # no autograd: in place, one pass over the activations fewer
        return hook

    def _replace_hook(self, k: int) -> Callable:
        def hook(_module, _inputs, act_RxLxU):
            _, replace_RxU, value_RxU = self._rows(k, act_RxLxU)
            R, U = replace_RxU.shape
            shape = (R, *([1] * (act_RxLxU.ndim - 2)), U)
            return torch.where(replace_RxU.view(shape), value_RxU.to(act_RxLxU.dtype).view(shape), act_RxLxU)
        return hook


@contextmanager
def row_edits(model: IARModel, edits_E: Sequence[EditLike], rows_per_edit: int | None = None
              ) -> Iterator[RowEditHooks]:
    """Within the block, batch row r of every forward pass gets edit r // rows_per_edit (edit e on rows
    [e R, (e + 1) R): the caller repeats its inputs E times on the batch axis). Without `rows_per_edit`,
    call `.assign(edit_R)` on the yielded handle before each differently stacked batch. The hooks are
    always removed, also when the body raises."""
    hooks = RowEditHooks(model, edits_E)
    try:
        hooks.attach()
        if rows_per_edit is not None:
            hooks.assign(torch.arange(hooks.n_edits).repeat_interleave(rows_per_edit))
        yield hooks
    finally:
        hooks.remove()


def _stacked(model: IARModel, edits_E: Sequence[EditLike], n: int, batch_size: int,
             run: Callable[[torch.Tensor], object]) -> list:
    """run(input_R) on chunks of the E x n (edit, input) pairs, edit-major, with the chunk's edits assigned;
    -> the chunk results in order."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    E = len(edits_E)
    edit_N = torch.arange(E).repeat_interleave(n)
    input_N = torch.arange(n).repeat(E)
    outs = []
    with torch.no_grad(), row_edits(model, edits_E) as hooks:
        for s in range(0, E * n, batch_size):
            hooks.assign(edit_N[s:s + batch_size])
            outs.append(run(input_N[s:s + batch_size]))
    return outs


def teacher_forced_scores_E(model: IARModel, edits_E: Sequence[EditLike], tokens_BxL: torch.Tensor,
                            labels_B: torch.Tensor, positions_L: torch.Tensor, batch_size: int = 256
                            ) -> tuple[np.ndarray, np.ndarray]:
    """`batching.teacher_forced_scores` under each edit: (top-1 accuracy E x B, mean log-likelihood E x B in
    nats) of the true tokens at `positions_L` (bool L)."""
    E, B = len(edits_E), len(tokens_BxL)
    dev = tokens_BxL.device

    def run(i_R):
        i_R = i_R.to(dev)
        return teacher_forced_scores(model, tokens_BxL[i_R], labels_B[i_R], positions_L, batch_size=len(i_R))

    outs = _stacked(model, edits_E, B, batch_size, run)
    acc = np.concatenate([o[0] for o in outs]) if outs else np.zeros(0)
    ll = np.concatenate([o[1] for o in outs]) if outs else np.zeros(0)
    return acc.reshape(E, B), ll.reshape(E, B)


def continue_greedy_E(model: IARModel, edits_E: Sequence[EditLike], tokens_BxL: torch.Tensor,
                      labels_B: torch.Tensor, prefix: int, batch_size: int = 256) -> torch.Tensor:
    """`model.continue_greedy(tokens, labels, prefix)` under each edit: tokens E x B x L."""
    E, (B, L) = len(edits_E), tokens_BxL.shape
    dev = tokens_BxL.device

    def run(i_R):
        i_R = i_R.to(dev)
        return model.continue_greedy(tokens_BxL[i_R], labels_B[i_R], prefix)

    outs = _stacked(model, edits_E, B, batch_size, run)
    return (torch.cat(outs) if outs else tokens_BxL.new_zeros(0, L)).reshape(E, B, L)


def generate_E(model: IARModel, edits_E: Sequence[EditLike], labels_B: torch.Tensor, seeds: list[int],
               batch_size: int = 256) -> torch.Tensor:
    """`model.generate(labels, seeds)` under each edit: tokens E x B x L; sample [e, i] depends only on
    seeds[i] (and edit e), as in the one-at-a-time run."""
    E, B, L = len(edits_E), len(labels_B), model.seq_len
    if len(seeds) != B:
        raise ValueError(f"one seed per label: {B} labels, {len(seeds)} seeds")
    dev = labels_B.device

    def run(i_R):
        return model.generate(labels_B[i_R.to(dev)], [seeds[i] for i in i_R.tolist()])

    outs = _stacked(model, edits_E, B, batch_size, run)
    return (torch.cat(outs) if outs else torch.zeros(0, L, dtype=torch.long)).reshape(E, B, L)
