"""One run-directory type for every command that writes a directory.

    DIR/config.json    {"kind": KIND, ...the resolved config}; written first
    DIR/state/         partial state of an unfinished run (each kind keeps its own format inside)
    DIR/metrics.json   written last: its presence marks a finished run

`RunDir.open` checks, before any work starts and without writing anything, that the directory is of the
expected kind, that it can be created and written, and what `--resume` may do with it. No framework imports.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from memlab.errors import UsageError
from memlab.io import normalize_json, read_json, write_json

# kind -> the command that writes it (for messages)
KINDS = {
    "train": "`memlab train` run (diffusion)",
    "sweep": "`memlab sweep run` sweep",
    "sweep-jobs": "`memlab sweep run` job sweep (named jobs)",
    "iar-train": "`memlab iar train` run (IAR)",
    "iar-unlearn": "`memlab iar unlearn` run (IAR, unlearned)",
    "iar-localize": "`memlab iar localize` result",
    "iar-extract": "`memlab iar extract` result",
    "iar-ablate": "`memlab iar ablate` result",
    "iar-yardstick": "`memlab iar ablate --localizer` yardstick result",
    "iar-inject": "INJ injected model (memlab.iar.inject)",
    "iar-localizers": "`memlab iar localizers` leaderboard",
    "iar-mitigations": "`memlab iar mitigations` scoreboard",
    "iar-analyze": "`memlab iar analyze` result",
    "iar-external": "work directory of an external model (`memlab iar ... --model diffusers:PATH`)",
}
STATE = "state"
CONFIG = "config.json"
METRICS = "metrics.json"


def describe(kind: str | None) -> str:
    return KINDS.get(kind, "directory of unknown kind") if kind else "directory memlab did not write"


def kind_of(path: Path) -> str | None:
    """The kind a directory records; directories from before kinds were recorded are recognised by their
    layout. None: not a memlab directory."""
    path = Path(path)
    cfg_file = path / CONFIG
    if cfg_file.is_file():
        raw = read_json(cfg_file)
        if isinstance(raw, dict):
            if isinstance(raw.get("kind"), str):
                return raw["kind"]
            train = raw.get("train")
            if isinstance(train, dict):
                return "iar-train" if "arch" in train else "train"
            for key, kind in (("ablate", "iar-ablate"), ("unitmem", "iar-localize"), ("extract", "iar-extract")):
                if key in raw:
                    return kind
    if (path / "spec.json").is_file():
        return "sweep"
    return None


def check_writable(path: Path, flag: str, *, is_dir: bool = True) -> None:
    """Refuse, writing nothing, an output path that cannot be created and written: a path under a regular
    file, on a read-only or virtual file system, or a directory where a file is wanted (and vice versa)."""
    path = Path(path)
    if path.exists():
        if is_dir and not path.is_dir():
            raise UsageError(f"{flag} {path} exists and is not a directory")
        if not is_dir and path.is_dir():
            raise UsageError(f"{flag} must be a file path, got the directory {path}")
    anchor = path if (is_dir and path.is_dir()) else path.parent
    while not anchor.exists():
        anchor = anchor.parent
    if not anchor.is_dir():
        raise UsageError(f"{flag} {path} cannot be created: {anchor} is a file, not a directory")
    _probe(anchor, flag, path)


def _probe(directory: Path, flag: str, path: Path) -> None:
    """Create and delete a file in `directory` (then restore its times), the only test that a write will
    work on every file system (permissions say nothing to root, /proc or a read-only mount)."""
    st = directory.stat()
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".memlab-probe.")
    except OSError as e:
        raise UsageError(f"{flag} {path} cannot be written: {e.strerror or e} in {directory}") from None
    os.close(fd)
    os.unlink(tmp)
    try:
        os.utime(directory, ns=(st.st_atime_ns, st.st_mtime_ns))
    except OSError:
        pass


@dataclass(frozen=True)
class RunDir:
    path: Path
    kind: str

    @property
    def state(self) -> Path:
        return self.path / STATE

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG

    @property
    def metrics_file(self) -> Path:
        return self.path / METRICS

    def is_done(self) -> bool:
        return self.metrics_file.is_file()

    @classmethod
    def open(cls, path, kind: str, *, resume: bool = False, flag: str = "--out",
             continue_same: bool = False) -> tuple["RunDir", str]:
        """-> (run dir, mode) with mode 'fresh' | 'resume' | 'done', after every check, before any write.

        resume: DIR must hold a run of this kind (missing or empty DIR is an error). Without resume a
        non-empty DIR is refused, unless `continue_same` (sweeps and IAR sub-results: re-running the same
        config continues; the caller compares configs)."""
        rd = cls(Path(path), kind)
        p = rd.path
        if p.exists() and not p.is_dir():
            raise UsageError(f"{flag} {p} exists and is not a directory")
        empty = not p.exists() or not any(p.iterdir())
        if resume and not p.exists():
            raise UsageError(f"--resume: {p} does not exist, so there is no run to continue; drop --resume to start one")
        if resume and empty:
            raise UsageError(f"--resume: {p} is empty, so there is no run to continue; drop --resume to start one")
        if empty:
            check_writable(p, flag)
            return rd, "fresh"
        found = kind_of(p)
        if found is None:
            raise UsageError(f"{flag} {p} is not empty and memlab did not write it; choose an empty or new directory")
        if found != kind:
            raise UsageError(f"{flag} {p} is a {describe(found)}, not a {KINDS[kind]}; choose another directory")
        check_writable(p, flag)
        if not resume and not continue_same:
            raise UsageError(f"{flag} {p} already holds a {KINDS[kind]}; pass --resume to continue it, "
                             "or choose a new directory")
        return rd, "done" if rd.is_done() else "resume"

    @classmethod
    def existing(cls, path, kind: str, what: str = "RUN") -> "RunDir":
        """A finished or partial directory of `kind` that a command reads (localize reads an IAR run)."""
        p = Path(path)
        if not p.is_dir():
            raise UsageError(f"{what} {p} does not exist or is not a directory")
        found = kind_of(p)
        if found != kind:
            raise UsageError(f"{what} {p} is a {describe(found)}, not a {KINDS[kind]}")
        return cls(p, kind)

    def saved_config(self) -> dict:
        """config.json without its kind."""
        raw = read_json(self.config_file)
        if not isinstance(raw, dict):
            raise UsageError(f"malformed {self.config_file}: expected a JSON object")
        return {k: v for k, v in raw.items() if k != "kind"}

    def same_config(self, config: dict) -> bool:
        return self.config_file.is_file() and _text(self.saved_config()) == _text(config)

    def require_config(self, config: dict, saved: dict | None = None) -> None:
        """Refuse to continue this run with another config, naming the fields that differ. saved: the
        saved config as its kind reads it today (a layout that has changed since it was written)."""
        saved = self.saved_config() if saved is None else saved
        if _text(saved) == _text(config):
            return
        new = normalize_json(config)
        diff = sorted(f"{sec}.{k}" for sec in set(saved) | set(new)
                      for k in set(_table(saved.get(sec))) | set(_table(new.get(sec)))
                      if _text(_table(saved.get(sec)).get(k)) != _text(_table(new.get(sec)).get(k)))
        raise UsageError(f"--resume: {self.path} was run with a different config (differs in "
                         f"{', '.join(diff) or 'layout'}; see {self.config_file})")

    def finished_metrics(self) -> dict | None:
        """The content of metrics.json (a JSON object) when the run is finished, else None."""
        if not self.is_done():
            return None
        metrics = read_json(self.metrics_file)
        return metrics if isinstance(metrics, dict) else None

    def start(self, config: dict) -> None:
        """Create the directory and record kind and config (the first write of a run). A metrics.json left
        by an earlier run with another config goes first: a started run is not a finished one."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.metrics_file.unlink(missing_ok=True)
        write_json(self.config_file, {"kind": self.kind, **normalize_json(config)})

    def finish(self, metrics: dict) -> None:
        write_json(self.metrics_file, metrics)


def _table(obj) -> dict:
    return obj if isinstance(obj, dict) else {"": obj}


def _text(obj) -> str:
    from memlab.io import to_json

    return to_json(normalize_json(obj))  # as text: a nan equals itself
