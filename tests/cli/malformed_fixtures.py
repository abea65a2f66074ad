"""Helpers of tests/cli/test_malformed_inputs.py: the tiny finished runs every case copies, the damage done
to them, the file-system listing compared before and after a case, and the two ways of running `memlab`
(in-process through `memlab.cli.main`, or as a real subprocess).

Also the case table's types: `Ctx` (a case's tmp dir with lazily copied runs), `Case` and `case()` (which
registers one in `CASES`). Nothing here is a pytest fixture: the session fixtures in the test module call the
`build_*` functions."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tomllib
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import memlab
from memlab.cli import main

TESTS = Path(__file__).resolve().parents[1]
# The repository whose `memlab` this process imported: a subprocess must run the same code.
REPO = Path(memlab.__file__).resolve().parents[1]

# --- the tiny runs ----------------------------------------------------------------------------------

# `memlab train`: 20 steps, 3 checkpoints (orbax steps 1 and 20 are kept), 16 samples, d = 4, N = 20.
TRAIN_FLAGS = ["--steps", "20", "--checkpoints", "3", "--samples", "16", "--n-train", "20", "--n-test", "50",
               "--dim", "4", "--components", "2", "--size", "4"]
# `memlab iar train` (the TINY run of tests/iar/test_iar_cli_train.py, raster model).
IAR_FLAGS = ["--arch", "raster", "--n-train", "8", "--n-heldout", "4", "--epochs", "2", "--tokenizer-epochs", "1",
             "--width", "32", "--depth", "1", "--heads", "2", "--codebook-size", "16",
             "--tokenizer-channels", "8,16,16", "--latent-channels", "4", "--batch-size", "4"]
LOCALIZE_FLAGS = ["--n-aug", "2"]
EXTRACT_FLAGS = ["--candidates", "4"]
ABLATE_FLAGS = ["--candidates", "4", "--controls", "random", "--n-random", "1", "--sweep", "10", "--no-by-block",
                "--n-generate", "8"]
# `memlab crossover predict` on a small problem (a few seconds if validation lets a bad value through).
PREDICT_FLAGS = ["--dim", "2", "--components", "2", "--n-train", "10", "--n-test", "20", "--draws", "4",
                 "--repeats", "2", "--grid", "5", "--bootstrap", "10"]

# A sweep of two cells (N = 10, M = 5 and 10, one seed). The fixture directory is filled by the stand-in
# cell and prediction functions of tests/sweep, with the real config resolution, so `memlab sweep run` of
# this same spec finds every cell done.
SPEC_TOML = """\
name = "malformed"

[data]
dim = 2
components = 2
n_train = 10
n_test = 20
{data}
[model]
sizes = {sizes}

[seeds]
count = 1

[train]
steps = 5
{train}
[sampling]
samples = 8

[predict]
draws = 4
repeats = 2
bootstrap = 10
"""


def spec_text(data: str = "", sizes: str = "[0.5, 1.0]", train: str = "") -> str:
    """The sweep spec above, with extra lines in [data] / [train] or other sizes."""
    return SPEC_TOML.format(data=data, sizes=sizes, train=train)


def _standin():
    if "sweep_standin" in sys.modules:
        return sys.modules["sweep_standin"]
    spec = importlib.util.spec_from_file_location("sweep_standin", TESTS / "sweep" / "sweep_standin.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["sweep_standin"] = mod
    spec.loader.exec_module(mod)
    return mod


def _main_ok(argv: list[str]) -> None:
    rc = main(argv)
    assert rc == 0, f"building a fixture failed: memlab {' '.join(argv)} -> {rc}"


def build_train_run(out: Path) -> Path:
    _main_ok(["train", *TRAIN_FLAGS, "--quiet", "--out", str(out)])
    assert (out / "metrics.json").is_file() and (out / "ckpt").is_dir()
    return out


def build_iar_run(out: Path) -> Path:
    """A finished raster run with localize/ (UnitMem) and ablate/ (one tiny ablation, rows.json kept)."""
    _main_ok(["iar", "train", *IAR_FLAGS, "--out", str(out)])
    _main_ok(["iar", "localize", str(out), *LOCALIZE_FLAGS])
    _main_ok(["iar", "ablate", str(out), *ABLATE_FLAGS])
    for f in ("config.json", "model/config.json", "tokenizer/config.json", "state/model/latest.json",
              "localize/unitmem.parquet", "ablate/config.json"):
        assert (out / f).is_file(), f
    find(out / "ablate", "rows.json")
    return out


def build_sweep(out: Path) -> Path:
    from memlab.sweep.runner import run_sweep
    from memlab.sweep.spec import parse_spec

    standin = _standin()
    spec = parse_spec(tomllib.loads(spec_text()))
    run_sweep(spec, out, workers=1, progress=False, cell_fn=standin.fake_cell, predict_fn=standin.fake_predict)
    assert len(list((out / "rows").glob("*.parquet"))) == 2
    return out


# --- damage -----------------------------------------------------------------------------------------

GARBAGE = b"\x00\x17garbage, not this format\xff\xfe{[\n"
BAD_TOML = 'steps = [1, 2\nlr = "unterminated\n[train\n'


def truncate(path: Path) -> Path:
    """Cut a file to half its length (at least one byte is removed): a write that stopped midway."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def garble(path: Path) -> Path:
    path.write_bytes(GARBAGE)
    return path


def one(paths, what: str) -> Path:
    paths = sorted(paths)
    assert paths, f"fixture has no {what}"
    return paths[-1]


def find(root: Path, name: str) -> Path:
    """The one file called `name` under root, wherever the run keeps it (partial state moves into the
    run-directory type's state/)."""
    hits = [p for p in root.rglob(name) if p.is_file()]
    assert len(hits) == 1, f"expected one {name} under {root}, found {[str(h.relative_to(root)) for h in hits]}"
    return hits[0]


def latest_orbax_step(run: Path) -> Path:
    steps = [p for p in (run / "ckpt").iterdir() if p.is_dir() and p.name.isdigit()]
    return max(steps, key=lambda p: int(p.name))


# --- the file system, before and after --------------------------------------------------------------

def listing(root: Path) -> dict[str, tuple]:
    """Every entry under root: files with (size, mtime_ns), directories by path alone (a directory's own
    size and mtime change when a file is created and removed inside it, which is not a change left behind)."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root) + "/"] = ("dir",)
        for f in filenames:
            p = os.path.join(dirpath, f)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns)
    return out


def changes(before: dict, after: dict, limit: int = 6) -> list[str]:
    new = sorted(set(after) - set(before))
    gone = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    out = []
    for sign, keys in (("+", new), ("-", gone), ("~", changed)):
        out += [f"{sign}{k}" for k in keys[:limit]] + ([f"{sign}... {len(keys) - limit} more"] if len(keys) > limit else [])
    return out


# --- running memlab ---------------------------------------------------------------------------------

@dataclass
class Outcome:
    rc: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stderr.strip().splitlines()

    @property
    def exception(self) -> str:
        """The last line of the first traceback (its exception), or ''."""
        text = self.stderr + self.stdout
        i = text.find("Traceback (most recent call last)")
        if i < 0:
            return ""
        for line in text[i:].splitlines()[1:]:
            if line and not line.startswith(" "):
                return line.strip()
        return "Traceback"


def run_in_process(argv: list[str], cwd: Path, capsys) -> Outcome:
    """`memlab.cli.main(argv)` in cwd. An exception escaping main is what the interpreter would print: a
    traceback on stderr and exit status 1."""
    capsys.readouterr()  # drop anything a fixture printed
    old = os.getcwd()
    os.chdir(cwd)
    tb = ""
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except Exception:  # noqa: BLE001 - the case's result
        rc, tb = 1, traceback.format_exc()
    finally:
        os.chdir(old)
    cap = capsys.readouterr()
    return Outcome(int(rc) if rc is not None else 0, cap.out, cap.err + tb)


def run_subprocess(argv: list[str], cwd: Path, timeout: float = 300) -> Outcome:
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run([sys.executable, "-m", "memlab", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


# --- the case table ---------------------------------------------------------------------------------

class Ctx:
    """A case's tmp dir (also its working directory) and lazily copied fixtures."""

    def __init__(self, root: Path, request):
        self.root, self.request = root, request
        self.damaged: str | None = None  # name of the file a `_damage` prepare damaged

    def p(self, rel: str) -> str:
        return str(self.root / rel)

    def _copy(self, fixture: str, name: str) -> Path:
        dst = self.root / name
        if not dst.exists():
            copy_tree(self.request.getfixturevalue(fixture), dst)
        return dst

    def train_run(self) -> Path:
        return self._copy("base_train_run", "trun")

    def iar_run(self) -> Path:
        return self._copy("base_iar_run", "irun")

    def sweep(self) -> Path:
        return self._copy("base_sweep", "sweep")

    def file(self, rel: str, content: str | bytes) -> str:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return str(path)

    def spec(self, text: str | None = None, name: str = "spec.toml") -> str:
        return self.file(name, spec_text() if text is None else text)

    def bad_toml(self) -> str:
        return self.file("bad.toml", BAD_TOML)

    def blocker(self, rel: str) -> str:
        """A path under the regular file ./blocker."""
        self.file("blocker", "a regular file, not a directory\n")
        return self.p(f"blocker/{rel}")


@dataclass(frozen=True)
class Case:
    id: str
    kind: str
    argv: Callable[[Ctx], list[str]]
    prepare: Callable[[Ctx], object] | None = None  # damage, before the listing is taken
    names: tuple[str, ...] = ()  # each must appear in the message
    forbid: tuple[str, ...] = ()  # none may appear in the message
    subprocess: bool = False


CASES: list[Case] = []


def case(kind: str, slug: str, argv, prepare=None, names=(), forbid=(), subprocess=False) -> None:
    CASES.append(Case(f"{kind}-{slug}", kind, argv, prepare, tuple(names), tuple(forbid), subprocess))
