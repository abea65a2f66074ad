"""Scoped activation capture and reversible weight edits, both addressed by canonical unit names
('block.3.mlp') from `IARModel.units()`, never by module paths.

`capture` attaches forward hooks and always removes them, also when the body raises. `scale_units`
multiplies the incoming weight rows (and biases) of chosen units by a factor and returns a handle whose
`restore()` writes back the saved rows, so the model is bit-identical afterwards.
"""

from __future__ import annotations

from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Mapping

import numpy as np
import torch

from memlab.errors import UsageError
from memlab.iar.interface import IARModel, UnitSpec

NameFilter = None | str | Iterable[str] | Callable[[str], bool]


def select_units(model: IARModel, names: NameFilter = None) -> "OrderedDict[str, UnitSpec]":
    """The model's unit layers kept by `names`: None (all), one name, a list of names, or a predicate."""
    specs = model.units()
    if names is None:
        return specs
    if callable(names):
        return OrderedDict((n, s) for n, s in specs.items() if names(n))
    wanted = [names] if isinstance(names, str) else list(names)
    unknown = [n for n in wanted if n not in specs]
    if unknown:
        raise UsageError(f"unknown unit layer {unknown[0]!r}; allowed: {', '.join(specs)}")
    return OrderedDict((n, specs[n]) for n in wanted)


@contextmanager
def capture(model: IARModel, names: NameFilter = None, *,
            on_activation: Callable[[str, torch.Tensor], None] | None = None,
            keep: bool = True) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block, every forward pass records each selected layer's hidden activation
    (B x L x U, detached) in the yielded dict (last pass wins; `keep=False` stores nothing) and/or passes it
    to `on_activation(name, act_BxLxU)` for streaming statistics."""
    acts: dict[str, torch.Tensor] = {}
    handles = []

    def make_hook(name: str):
        def hook(_module, _inputs, output):
            act = output.detach()
            if keep:
                acts[name] = act
            if on_activation is not None:
                on_activation(name, act)
        return hook

    try:
        for name, spec in select_units(model, names).items():
            handles.append(spec.module.register_forward_hook(make_hook(name)))
        yield acts
    finally:
        for h in handles:
            h.remove()


def n_hooks(model: IARModel) -> int:
    """Forward hooks currently attached to the unit modules and their pre-modules (0 outside `capture`
    and `batched.row_edits`)."""
    return sum(len(spec.module._forward_hooks) + len(spec.pre_module._forward_hooks)
               for spec in model.units().values())


@dataclass
class UnitEdit:
    """Saved rows of an edit; `restore()` puts them back exactly (idempotent)."""

    saved: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = field(default_factory=list)
    restored: bool = False

    def restore(self) -> None:
        if self.restored:
            return
        with torch.no_grad():
            for param, idx, rows in reversed(self.saved):
                param[idx] = rows
        self.restored = True


Selection = Mapping[str, "np.ndarray | torch.Tensor | list[int]"]  # unit-layer name -> unit indices


def unit_indices(model: IARModel, selection: Selection) -> list[tuple[str, UnitSpec, torch.Tensor]]:
    """(name, spec, unique indices) of every layer in `selection` with at least one unit, all validated
    before anyone touches a weight."""
    specs = select_units(model, list(selection))
    out = []
    for name, idx in selection.items():
        idx_t = torch.tensor(np.array(idx, dtype=np.int64)).unique()
        n_units = specs[name].weight.shape[0]
        if idx_t.numel() and (int(idx_t.min()) < 0 or int(idx_t.max()) >= n_units):
            raise UsageError(f"unit index out of range for {name}: allowed 0..{n_units - 1}")
        if idx_t.numel():
            out.append((name, specs[name], idx_t))
    return out


def scale_units(model: IARModel, selection: Selection, factor: float) -> UnitEdit:
    """Multiply the incoming weights (row u of `weight` and entry u of `bias`) of the selected units by
    `factor`. `selection` maps a unit-layer name to unit indices. Returns the handle that undoes it."""
    todo = unit_indices(model, selection)
    edit = UnitEdit()
    with torch.no_grad():
        for _, spec, idx_t in todo:
            for param in (spec.weight, spec.bias):
                if param is None:
                    continue
                edit.saved.append((param, idx_t, param[idx_t].clone()))
                param[idx_t] = param[idx_t] * factor
    return edit


@contextmanager
def scaled_units(model: IARModel, selection, factor: float) -> Iterator[UnitEdit]:
    """`scale_units` for the duration of the block; restored also when the body raises."""
    edit = scale_units(model, selection, factor)
    try:
        yield edit
    finally:
        edit.restore()
