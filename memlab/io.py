"""Atomic writes: a crashed or interrupted job never leaves a half-written file behind. Checked reads: a
missing or damaged file is a UsageError whose one line names the file and what is wrong."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from memlab.errors import UsageError

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


def error_reason(exc: BaseException) -> str:
    """What is wrong, for a one-line message: the first line of the innermost exception in the chain of
    causes (libraries wrap the specific error in a generic one), or its type name if it says nothing."""
    while True:
        inner = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        if inner is None:
            break
        exc = inner
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    # "Error(s) in loading state_dict for X:" says what follows on the next line
    return f"{lines[0]} {lines[1]}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]


def _unreadable(p: Path, what: str, e: OSError) -> UsageError:
    if isinstance(e, FileNotFoundError):
        return UsageError(f"{what} {p} does not exist")
    return UsageError(f"cannot read {what} {p}: {e.strerror or error_reason(e)}")


def _read_bytes(p: Path, what: str) -> bytes:
    try:
        return p.read_bytes()
    except OSError as e:
        raise _unreadable(p, what, e) from None


def _not_utf8(e: UnicodeDecodeError) -> str:
    return f"not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start})"


def read_text(path: Path, what: str = "file") -> str:
    """The UTF-8 text of `path`; a missing, unreadable or non-UTF-8 file is a UsageError naming it."""
    p = Path(path)
    try:
        return _read_bytes(p, what).decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"{what} {p} is {_not_utf8(e)}") from None


def read_json(path: Path) -> Any:
    """The JSON value in `path`; a missing, unreadable or malformed file is a UsageError (a ValueError) naming
    it, so the CLI prints one line."""
    p = Path(path)
    data = _read_bytes(p, "JSON file")
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise UsageError(f"malformed JSON in {p}: {_not_utf8(e)}") from None
    except json.JSONDecodeError as e:
        raise UsageError(f"malformed JSON in {p}: {e}") from None


def read_npz(path: Path, what: str = "npz file") -> dict[str, np.ndarray]:
    """All arrays of a pickle-free .npz, loaded eagerly; a missing or damaged file is a UsageError naming it."""
    import zipfile
    import zlib

    p = Path(path)
    try:
        with open(p, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise _unreadable(p, what, e) from None
    if magic != b"PK\x03\x04":  # np.load would read anything else as .npy or as (refused) pickle data
        raise UsageError(f"damaged {what} {p}: not an npz (zip) archive")
    try:
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise UsageError(f"damaged {what} {p}: {error_reason(e)}") from None


def read_parquet(path: Path, columns: list[str] | None = None, what: str = "parquet file"):
    """A pandas DataFrame from `path` (all columns, or `columns`, which must exist); a missing or damaged
    file is a UsageError naming it."""
    import pandas as pd
    import pyarrow as pa

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{what} {p} does not exist or is not a file")
    try:
        return pd.read_parquet(p, columns=columns)
    except (OSError, ValueError, KeyError, pa.ArrowException) as e:
        raise UsageError(f"damaged {what} {p}: {error_reason(e)}") from None


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
