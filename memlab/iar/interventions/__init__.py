"""Interventions behind one protocol, so the yardstick scores every method on the same numbers.

Two families:
- an `Edit` changes a loaded model in place and restores it exactly (`apply` returns the handle whose
  `restore()` undoes it; `applied` is the scoped form). Unit edits (scale, zero, mean-ablate) also describe
  themselves per unit (`row_edits`) so that batched evaluation can stack many of them on the batch axis;
- a `NewRun` names a run directory that a method produced (unlearning, retraining: later issues); the
  yardstick loads and scores it like the base run.
"""

from memlab.iar.interventions.base import Edit, Intervention, NewRun, RowEdit, Restorer
from memlab.iar.interventions.units import MeanAblateUnits, ScaleUnits, ZeroUnits, unit_means

__all__ = ["Edit", "Intervention", "MeanAblateUnits", "NewRun", "Restorer", "RowEdit", "ScaleUnits",
           "ZeroUnits", "unit_means"]
