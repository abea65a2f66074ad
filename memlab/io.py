"""Atomic writes: a crashed or interrupted job never leaves a half-written file behind."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


_UMASK = os.umask(0)
os.umask(_UMASK)


def _atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _json_default(obj: Any):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def to_json(obj: Any, indent: int | None = 2) -> str:
    return json.dumps(obj, indent=indent, default=_json_default, allow_nan=True)


def normalize_json(obj: Any) -> Any:
    """The JSON round trip of `obj` (tuples become lists, numpy scalars plain numbers), so a config compares
    equal to what was saved."""
    return json.loads(to_json(obj))


def write_json(path: Path, obj: Any) -> None:
    text = to_json(obj).encode()
    _atomic(Path(path), lambda f: f.write(text))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def write_text(path: Path, text: str) -> None:
    data = text.encode()
    _atomic(Path(path), lambda f: f.write(data))


def save_npy(path: Path, array: np.ndarray) -> None:
    arr = np.asarray(array)
    _atomic(Path(path), lambda f: np.save(f, arr, allow_pickle=False))


def save_npz(path: Path, **arrays) -> None:
    """Several arrays in one file, written atomically (all or none of them)."""
    arrs = {k: np.asarray(v) for k, v in arrays.items()}
    _atomic(Path(path), lambda f: np.savez(f, **arrs))


def load_npy(path: Path) -> np.ndarray:
    return np.load(Path(path), allow_pickle=False)


def new_figure(figsize: tuple[float, float] = (6.4, 4.8), nrows: int = 1, ncols: int = 1, **subplots_kw):
    """(fig, axes): a matplotlib Figure on its own Agg canvas and `fig.subplots(nrows, ncols, **subplots_kw)`.
    No pyplot: the process-wide backend and pyplot's figure registry stay as they are, and nothing needs
    closing. Constrained layout, so titles, colorbars and legends outside the axes get room."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, **subplots_kw)


def legend_outside(ax, fontsize: float = 7, **kw):
    """The legend of `ax` to the right of its axes, where it covers no data."""
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=fontsize, **kw)


def shifted(ax, points: float, x_S=(), y_S=(), base=None):
    """A transform that draws `points` to the right of where `base` (default ax.transData) would: side by
    side, series that share x values no longer hide each other. (x_S, y_S) join the data limits, which
    autoscaling would skip for an artist drawn with a transform of its own."""
    import numpy as np
    from matplotlib.transforms import ScaledTranslation

    if len(x_S):
        ax.update_datalim(np.column_stack([np.asarray(x_S, float), np.asarray(y_S, float)]))
    return (base or ax.transData) + ScaledTranslation(points / 72, 0, ax.figure.dpi_scale_trans)


def save_figure(fig, path: Path, dpi: int = 130) -> None:
    """Save a matplotlib figure atomically as PNG."""
    _atomic(Path(path), lambda f: fig.savefig(f, format="png", dpi=dpi, bbox_inches="tight"))


def write_parquet(path: Path, frame, index: bool = False) -> None:
    """Write a pandas DataFrame as parquet, atomically."""
    import io

    buf = io.BytesIO()
    frame.to_parquet(buf, index=index)
    data = buf.getvalue()
    _atomic(Path(path), lambda f: f.write(data))
