"""The intervention protocol: what every method hands to the yardstick."""

from __future__ import annotations

import abc
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol

import torch

from memlab.iar.interface import IARModel


class Restorer(Protocol):
    def restore(self) -> None:
        """Undo the edit exactly (bit for bit); calling it twice is harmless."""


@dataclass(frozen=True)
class RowEdit:
    """What a unit edit does to one unit layer, per unit U: the pre-activation is multiplied by `scale_U`,
    then units where `replace_U` is set output `value_U` instead of their activation (mean-ablation).
    Stacking E of these on the batch axis evaluates E edits in one pass."""

    scale_U: torch.Tensor  # float, 1 = untouched
    replace_U: torch.Tensor  # bool
    value_U: torch.Tensor  # float, read where replace_U

    @classmethod
    def identity(cls, n_units: int) -> "RowEdit":
        return cls(torch.ones(n_units), torch.zeros(n_units, dtype=torch.bool), torch.zeros(n_units))


class Intervention(abc.ABC):
    """A method's output: an edit of the loaded base model, or a new run directory."""

    name: str

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """JSON-ready parameters that identify the intervention in the yardstick table."""


class Edit(Intervention):
    @abc.abstractmethod
    def apply(self, model: IARModel) -> Restorer:
        """Change `model` in place; the returned handle restores it exactly."""

    @abc.abstractmethod
    def row_edits(self, model: IARModel) -> dict[str, RowEdit]:
        """The same edit as per-unit multipliers / replacements, by unit-layer name (layers it leaves
        alone may be missing)."""

    @property
    def n_edited(self) -> int:
        """Units touched (for tables; a unit counts once whatever the factor)."""
        return 0

    @contextmanager
    def applied(self, model: IARModel) -> Iterator[IARModel]:
        """The model with this edit for the duration of the block; restored also when the body raises."""
        handle = self.apply(model)
        try:
            yield model
        finally:
            handle.restore()


@dataclass(frozen=True)
class NewRun(Intervention):
    """A run directory a method wrote (an `iar-train` run); the yardstick loads it with `load()`."""

    name: str
    path: Path
    params: tuple[tuple[str, Any], ...] = ()

    def describe(self) -> dict[str, Any]:
        return {"method": self.name, "run": str(self.path), **dict(self.params)}

    def load(self) -> IARModel:
        from memlab.iar.load import load_run

        return load_run(self.path)
