"""Named jobs: a sweep spec whose entries are memlab command lines (retraining with MemSinks, pruning,
deduplication, reweighting, unlearning, merging, more seeds) instead of `memlab train` cells. One spec,
one directory, the same runner backends (local pool or Ray) and the same resume rules as a diffusion sweep.

    name = "mitigations"
    [defaults."iar train"]           # arguments every job of a command gets unless it sets them itself
    threads = 1
    [[job]]
    name = "base-{arch}-s{seed}"     # {key}: a value of the job's grid, in the name and in any argument
    command = "iar train"
    args = { config = "settings/iar_8x8.toml", arch = "{arch}", seed = "{seed}", cartography = true }
    grid = { arch = ["next-scale", "raster"], seed = [0, 1] }   # every combination is a job
    [[job]]
    name = "prune-{arch}-s{seed}"
    command = "iar train"
    args = { arch = "{arch}", seed = "{seed}", prune_from = "{run:base-{arch}-s{seed}}", prune = 10 }
    grid = { arch = ["next-scale", "raster"], seed = [0, 1] }

`inputs = [...]` are positional arguments, placed right after the command. An argument `key = value` becomes `--key value` (underscores become dashes; true is a bare flag, false
leaves it out, a list is joined with commas). `{run:NAME}` names another
job's run directory and makes this job wait for it (`after = [NAME, ...]` waits without naming it). The
runner gives every job `--out DIR/runs/NAME` (and `--resume` when a killed sweep left that directory
half-written), so `out` and `resume` are not arguments; a job with `out = false` (a command that writes into
the run it is given, such as `iar localize {run:NAME}`) gets neither and is done when it exits 0. Every job's command line is checked against memlab's own parser before anything runs.
No framework imports here."""

from __future__ import annotations

import contextlib
import io
import itertools
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memlab.errors import UsageError

TOP_KEYS = ("name", "defaults", "job")
JOB_KEYS = ("name", "command", "inputs", "args", "grid", "resume", "out", "after")
RESERVED_ARGS = ("out", "resume")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
RUN_REF = re.compile(r"\{run:([^{}]+)\}")
GRID_REF = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Job:
    """One memlab command line. `args` exclude --out/--resume, which the runner adds; `needs` are the
    jobs whose run directories this one reads (from its `{run:NAME}` references)."""

    name: str
    command: tuple[str, ...]
    args: tuple[str, ...]
    needs: tuple[str, ...] = ()
    resume: bool = True
    writes_run: bool = True  # False: a command that writes into another job's run (localize, ablate, ...)

    def argv(self, out: Path, resume: bool = False) -> list[str]:
        if not self.writes_run:
            return [*self.command, *self.args]
        return [*self.command, *self.args, "--out", str(out), *(["--resume"] if resume else [])]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "command": list(self.command), "args": list(self.args),
                "needs": list(self.needs), "resume": self.resume, "out": self.writes_run}


@dataclass(frozen=True)
class JobSpec:
    name: str
    jobs: tuple[Job, ...]
    source: dict = field(default_factory=dict, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "jobs": [j.to_json() for j in self.jobs]}

    def levels(self) -> list[list[Job]]:
        """Jobs in waves: each wave needs only jobs of earlier waves (spec order within a wave)."""
        done: set[str] = set()
        left = list(self.jobs)
        waves = []
        while left:
            wave = [j for j in left if set(j.needs) <= done]
            if not wave:
                raise UsageError(f"jobs {', '.join(j.name for j in left)} wait for each other in a cycle")
            waves.append(wave)
            done |= {j.name for j in wave}
            left = [j for j in left if j.name not in done]
        return waves


def is_job_spec(raw: dict) -> bool:
    return isinstance(raw, dict) and "job" in raw


def _fill(text: str, values: dict[str, Any], where: str) -> str:
    def sub(m):
        if m.group(1) not in values:
            raise UsageError(f"{where}: {{{m.group(1)}}} is not a key of the job's grid "
                             f"({', '.join(values) or 'it has none'})")
        return str(values[m.group(1)])
    return GRID_REF.sub(sub, text)


def _flag(key: str, where: str) -> str:
    if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", key):
        raise UsageError(f"{where}: argument name {key!r} must be letters, digits, - or _")
    if key.replace("-", "_") in RESERVED_ARGS:
        raise UsageError(f"{where}: {key!r} is set by the runner (--out DIR/runs/NAME, --resume); remove it")
    return "--" + key.replace("_", "-")


def _words(key: str, value, where: str) -> list[str]:
    flag = _flag(key, where)
    if isinstance(value, bool):
        return [flag] if value else []
    if isinstance(value, (int, float, str)):
        return [flag, str(value)]
    if isinstance(value, list) and value and all(isinstance(v, (int, float, str)) and not isinstance(v, bool)
                                                 for v in value):
        return [flag, ",".join(str(v) for v in value)]
    raise UsageError(f"{where}: argument {key!r} must be a string, number, boolean or non-empty list of "
                     f"numbers/strings, got {value!r}")


def _grid(table, where: str) -> list[dict[str, Any]]:
    if table is None:
        return [{}]
    if not isinstance(table, dict):
        raise UsageError(f"{where}: grid must be a table of lists, got {type(table).__name__}")
    axes = {}
    for k, v in table.items():
        values = v if isinstance(v, list) else [v]
        if not values:
            raise UsageError(f"{where}: grid.{k} must not be an empty list")
        axes[k] = values
    return [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]


def _expand(entry: dict, defaults_of: dict, runs_dir: Path, index: int) -> list[Job]:
    where = f"[[job]] #{index + 1}"
    if not isinstance(entry, dict):
        raise UsageError(f"{where} must be a table")
    bad = sorted(set(entry) - set(JOB_KEYS))
    if bad:
        raise UsageError(f"{where}: unknown key {bad[0]!r}; allowed: {', '.join(JOB_KEYS)}")
    for key in ("name", "command"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise UsageError(f"{where}: {key} must be a non-empty string")
    args = entry.get("args", {})
    if not isinstance(args, dict):
        raise UsageError(f"{where}: args must be a table, got {type(args).__name__}")
    inputs = entry.get("inputs", [])
    if not isinstance(inputs, list) or not all(isinstance(a, (str, int, float)) for a in inputs):
        raise UsageError(f"{where}: inputs must be a list of positional arguments, got {inputs!r}")
    command = tuple(shlex.split(entry["command"]))
    defaults = defaults_of.get(" ".join(command), {})
    resume, writes_run = entry.get("resume", True), entry.get("out", True)
    for key, value in (("resume", resume), ("out", writes_run)):
        if not isinstance(value, bool):
            raise UsageError(f"{where}: {key} must be true or false, got {value!r}")
    after = entry.get("after", [])
    if not isinstance(after, list) or not all(isinstance(a, str) for a in after):
        raise UsageError(f"{where}: after must be a list of job names, got {after!r}")
    jobs = []
    for values in _grid(entry.get("grid"), where):
        name = _fill(entry["name"], values, where)
        where_j = f"job {name!r}"
        if not NAME_RE.match(name):
            raise UsageError(f"{where_j}: a job name is letters, digits, '.', '_' or '-' (it names a directory)")
        merged = {**defaults, **args}
        needs = [_fill(a, values, where_j) for a in after]

        def resolved(value):
            if isinstance(value, list):
                return [resolved(v) for v in value]
            if not isinstance(value, str):
                return value

            def ref(m):
                needs.append(m.group(1))
                return str(runs_dir / m.group(1))
            return RUN_REF.sub(ref, _fill(value, values, where_j))  # grid values first: they may name a job

        argv = [str(resolved(a)) for a in inputs]
        for key, value in merged.items():
            argv += _words(key, resolved(value), where_j)
        jobs.append(Job(name, command, tuple(argv), tuple(dict.fromkeys(needs)), resume,
                        writes_run))
    return jobs


def parse_job_spec(raw: dict, runs_dir: Path, check_argv=None) -> JobSpec:
    """Validate a job spec. `runs_dir` is where the jobs' run directories go (DIR/runs); `check_argv`
    (memlab's parser by default) is called on every job's command line and raises UsageError."""
    bad = sorted(set(raw) - set(TOP_KEYS))
    if bad:
        raise UsageError(f"unknown key {bad[0]!r} in job spec; allowed: {', '.join(TOP_KEYS)}")
    name = raw.get("name", "jobs")
    if not isinstance(name, str) or not name:
        raise UsageError(f"name must be a non-empty string, got {name!r}")
    defaults = raw.get("defaults", {})
    if not isinstance(defaults, dict) or not all(isinstance(v, dict) for v in defaults.values()):
        raise UsageError('[defaults] holds one table per command, such as [defaults."iar train"] threads = 1')
    entries = raw.get("job")
    if not isinstance(entries, list) or not entries:
        raise UsageError("a job spec needs at least one [[job]] table (name, command, args, grid)")
    jobs = [j for i, e in enumerate(entries) for j in _expand(e, defaults, runs_dir, i)]
    names = [j.name for j in jobs]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise UsageError(f"two jobs are named {dup!r}; put every grid key that varies into the name")
    for j in jobs:
        unknown = [n for n in j.needs if n not in names]
        if unknown:
            raise UsageError(f"job {j.name!r} needs {unknown[0]!r} ({{run:...}} or after), but no job has that name")
    spec = JobSpec(name, tuple(jobs), source=dict(raw))
    spec.levels()  # a cycle is an input error too
    check = check_argv or check_memlab_argv
    for j in jobs:
        check(j)
    return spec


def check_memlab_argv(job: Job) -> None:
    """Parse the job's command line with memlab's own parser (no framework is imported by parsing)."""
    from memlab.cli import build_parser

    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            args = build_parser().parse_args(job.argv(Path("OUT")))
        except UsageError as e:
            raise UsageError(f"job {job.name!r}: {str(e).splitlines()[0]}") from None
        except SystemExit:
            raise UsageError(f"job {job.name!r}: `memlab {' '.join(job.command)}` is not a command") from None
    if not getattr(args, "func", None):
        raise UsageError(f"job {job.name!r}: `memlab {' '.join(job.command)}` is not a command")
