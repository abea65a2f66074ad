"""Phase diagrams: sweep spec, runner (local or Ray), resumable result store, phase analysis and plots.
Imports no framework; training and prediction are imported by the cells that run them. Names are loaded
on first use, so a pool worker that only runs cells does not import pandas or matplotlib."""

import importlib

_WHERE = {
    "SweepSpec": "spec", "load_spec": "spec", "parse_spec": "spec",
    "SweepStore": "store", "load_table": "store",
    "run_sweep": "runner",
    "observed_transition": "phase", "summarize": "phase", "summarize_dir": "phase",
    "plot_sweep": "plot", "save_panels": "plot",
    "TEMPLATE": "template",
}
__all__ = sorted(_WHERE)


def __getattr__(name):
    if name not in _WHERE:
        raise AttributeError(f"module 'memlab.sweep' has no attribute {name!r}")
    return getattr(importlib.import_module(f"memlab.sweep.{_WHERE[name]}"), name)
