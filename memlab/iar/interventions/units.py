"""Unit edits: scale a unit's incoming weights and bias by a factor (its pre-activation scales by the same
factor), zero it (factor 0), or mean-ablate it (its activation is replaced by its mean over held-out
images). All restore the model exactly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from memlab.iar.hooks import Selection, capture, scale_units, unit_indices
from memlab.iar.interface import IARModel
from memlab.iar.interventions.base import Edit, RowEdit


def _count(selection: Selection) -> int:
    return sum(len(set(map(int, idx))) for idx in selection.values())


def _plain(selection: Selection) -> dict[str, list[int]]:
    return {name: sorted({int(i) for i in idx}) for name, idx in selection.items()}


class _UnitEdit(Edit):
    """What unit edits share: a selection (layer -> unit indices), a name, and who chose the units."""

    selection: Selection
    name: str
    params: dict[str, Any]
    factor = None  # a scaling edit's factor; None for edits that replace activations

    def _row(self, name: str, row: RowEdit, idx: torch.Tensor) -> None:
        raise NotImplementedError

    def row_edits(self, model: IARModel) -> dict[str, RowEdit]:
        edits = {}
        for name, spec, idx in unit_indices(model, self.selection):
            edits[name] = RowEdit.identity(spec.weight.shape[0])
            self._row(name, edits[name], idx)
        return edits

    @property
    def n_edited(self) -> int:
        return _count(self.selection)

    def describe(self) -> dict[str, Any]:
        factor = None if self.factor is None else float(self.factor)
        return {"edit": self.name, "factor": factor, "n_edited": self.n_edited, **self.params}


@dataclass
class ScaleUnits(_UnitEdit):
    """Multiply the selected units' pre-activations by `factor` (0 removes them)."""

    selection: Selection
    factor: float
    name: str = "scale"
    params: dict[str, Any] = field(default_factory=dict)  # who chose the units and how (localizer, k, draw)

    def apply(self, model: IARModel):
        return scale_units(model, self.selection, self.factor)

    def _row(self, name: str, row: RowEdit, idx: torch.Tensor) -> None:
        row.scale_U[idx] = self.factor


def ZeroUnits(selection: Selection, name: str = "zero", params: dict[str, Any] | None = None) -> ScaleUnits:
    """The selected units removed: their incoming weights and biases times 0."""
    return ScaleUnits(selection, 0.0, name, dict(params or {}))


@torch.no_grad()
def unit_means(model: IARModel, tokens_BxL: torch.Tensor, labels_B: torch.Tensor,
               batch_size: int = 64) -> dict[str, torch.Tensor]:
    """Mean hidden activation of every unit (U per layer) over the images and positions of a teacher-forced
    pass on `tokens_BxL` (held-out images for mean-ablation)."""
    sums: dict[str, torch.Tensor] = {}
    count = 0

    def add(name: str, act_BxLxU: torch.Tensor) -> None:
        sums[name] = sums.get(name, 0) + act_BxLxU.double().sum(dim=(0, 1))

    with capture(model, on_activation=add, keep=False):
        for i in range(0, len(tokens_BxL), batch_size):
            model.teacher_forced_logits(tokens_BxL[i:i + batch_size], labels_B[i:i + batch_size])
            count += len(tokens_BxL[i:i + batch_size]) * tokens_BxL.shape[1]
    return {name: (s / count).float() for name, s in sums.items()}


class _Hooks:
    def __init__(self, handles):
        self.handles = handles

    def restore(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


@dataclass
class MeanAblateUnits(_UnitEdit):
    """Replace the selected units' activations by `means` (from `unit_means` on held-out images)."""

    selection: Selection
    means: dict[str, torch.Tensor]
    name: str = "mean-ablate"
    params: dict[str, Any] = field(default_factory=dict)

    def apply(self, model: IARModel):
        handles = []
        for name, spec, idx in unit_indices(model, self.selection):
            value = self.means[name][idx]

            def hook(_module, _inputs, output, idx=idx, value=value):
                output = output.clone()
                output[..., idx] = value.to(output.dtype)
                return output
            handles.append(spec.module.register_forward_hook(hook))
        return _Hooks(handles)

    def _row(self, name: str, row: RowEdit, idx: torch.Tensor) -> None:
        row.replace_U[idx] = True
        row.value_U[idx] = self.means[name][idx]
