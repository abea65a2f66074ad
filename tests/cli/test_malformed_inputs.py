"""Every sub-command keeps the README's promise on malformed input: exit status 2, exactly one line on
stderr ("memlab: error: ..."), no traceback, and the file system left as it was (issue 10).

One table of cases, by kind:
  nan          NaN, inf and -inf in every float option of every command, and in every float of a sweep spec
  unwritable   output paths under a regular file, under /proc or /sys (tests run as root: no read-only dirs)
  corrupt      damaged files of every saved format: TOML (--config, sweep spec), JSON (config, metrics,
               progress, latest, spec, predictions, ablation rows), orbax, safetensors, parquet, npz, npy,
               images
  wrong-kind   a directory written by another command (train run, IAR run, sweep)
  resume       --resume of a missing or an empty directory, and --resume with flags that differ from the
               run's own config
Each case copies the session's tiny finished runs into its own tmp dir, damages the copy, and compares a
listing of that dir before and after: (path, size, mtime_ns) of every file and the path of every directory
(a directory's own mtime moves when a temporary file comes and goes, which leaves nothing behind). Cases run
in-process through `memlab.cli.main` (an exception escaping it counts as the interpreter would show it:
a traceback and exit status 1); a few run `python -m memlab` in a subprocess to prove the exit status.

Some cases also check that the message names the thing: the flag of a bad value, the file that is
damaged, the directory that is missing. Cases of the interfaces issue 10 adds (`--config FILE.toml` on every
command, `--resume --out DIR` without the original flags, `sweep run --resume --out DIR` without a spec)
refuse argparse's "unrecognized arguments" / "arguments are required" as the reason.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import malformed_fixtures as mf
from malformed_fixtures import CASES, Case, Ctx, case

TR = [*mf.TRAIN_FLAGS, "--quiet"]
IT = mf.IAR_FLAGS
CP = ["crossover", "predict", *mf.PREDICT_FLAGS]
LOC, EXT, ABL = mf.LOCALIZE_FLAGS, mf.EXTRACT_FLAGS, mf.ABLATE_FLAGS
NEW_INTERFACE = ("unrecognized arguments", "arguments are required")


# --- session fixtures: one tiny finished run of each kind ------------------------------------------

@pytest.fixture(scope="session")
def base_train_run(tmp_path_factory):
    return mf.build_train_run(tmp_path_factory.mktemp("malformed_base") / "train_run")


@pytest.fixture(scope="session")
def base_iar_run(tmp_path_factory):
    return mf.build_iar_run(tmp_path_factory.mktemp("malformed_base") / "iar_run")


@pytest.fixture(scope="session")
def base_sweep(tmp_path_factory):
    return mf.build_sweep(tmp_path_factory.mktemp("malformed_base") / "sweep")


# --- nan: NaN and +-inf in every float option -------------------------------------------------------

# command -> (argv of a valid, small invocation; its float options, as `memlab <cmd> --help` lists them)
FLOAT_OPTIONS: dict[str, tuple[Callable[[Ctx], list[str]], list[str]]] = {
    "crossover predict": (lambda c: [*CP, "--out", c.p("result.json")], ["--variance"]),
    "train": (lambda c: ["train", *TR, "--out", c.p("run")],
              ["--variance", "--lr", "--warmup-frac", "--final-lr", "--clip", "--threshold"]),
    "phase plot": (lambda c: ["phase", "plot", str(c.sweep()), "--out", c.p("fig.png"), "--boot", "20"], ["--t"]),
    "phase time": (lambda c: ["phase", "time", str(c.sweep()), "--out", c.p("fig.png"), "--boot", "20"],
                   ["--gen-rtol", "--conf"]),
    "iar train": (lambda c: ["iar", "train", *IT, "--out", c.p("run")], ["--lr", "--tokenizer-lr"]),
    "iar localize": (lambda c: ["iar", "localize", str(c.iar_run()), *LOC], ["--jitter", "--top-pct"]),
    "iar extract": (lambda c: ["iar", "extract", str(c.iar_run()), *EXT], ["--fpr", "--nn-ratio"]),
    "iar ablate": (lambda c: ["iar", "ablate", str(c.iar_run()), *ABL], ["--top", "--factor", "--fpr", "--nn-ratio"]),
    "iar localizers": (lambda c: ["iar", "localizers", str(c.iar_run()), "--methods", "activation", "--ks", "10",
                                  "--factors", "0", "--cloud-ks", "5", "--n-samples", "8", "--n-boot", "20"], []),
    "iar where": (lambda c: ["iar", "where", str(c.iar_run()), "--methods", "activation"], []),
    "iar analyze": (lambda c: ["iar", "analyze", str(c.iar_run()), "--what", "entropy", "--n-boot", "10"], []),
    "iar unlearn": (lambda c: ["iar", "unlearn", str(c.iar_run()), "--method", "ga", "--steps", "1",
                               "--out", c.p("unlearned")], []),
    "iar monitor": (lambda c: ["iar", "monitor", str(c.iar_run()), "--n-samples", "8"], []),
}
# Values a field documents as allowed: ExtractConfig.nn_ratio "inf = off" (no nearest-neighbour rule).
ALLOWED = {("iar extract", "--nn-ratio", "inf"), ("iar ablate", "--nn-ratio", "inf"), ("iar unlearn", "--nn-ratio", "inf"),
           ("iar localizers", "--nn-ratio", "inf"), ("iar where", "--nn-ratio", "inf")}


def parser_float_options() -> set[tuple[str, str]]:
    """(command, option) of every option the parser reads as a float (`memlab --help` imports no framework)."""
    from memlab.cli import build_parser

    found = set()

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*path, name])
            elif action.type is float and action.option_strings:
                found.add((" ".join(path), max(action.option_strings, key=len)))

    walk(build_parser(), [])
    return found


# Float options the parser gains (options derived from the config dataclasses) get their cases too.
for _cmd, _flag in sorted(parser_float_options()):
    if _cmd in FLOAT_OPTIONS and _flag not in FLOAT_OPTIONS[_cmd][1]:
        FLOAT_OPTIONS[_cmd][1].append(_flag)

for _cmd, (_argv, _flags) in FLOAT_OPTIONS.items():
    for _flag in _flags:
        for _value in ("nan", "inf", "-inf"):
            if (_cmd, _flag, _value) in ALLOWED:
                continue
            # --flag=value: argparse would read a bare "-inf" as an option
            case("nan", f"{_cmd.replace(' ', '-')}{_flag}={_value}",
                 lambda c, a=_argv, f=_flag, v=_value: [*a(c), f"{f}={v}"], names=[_flag])

# float lists
case("nan", "crossover-predict--weighting=list-with-nan",
     lambda c: [*CP, "--out", c.p("result.json"), "--weighting", ",".join(["1"] * 25 + ["nan"])], names=["--weighting"])
case("nan", "iar-ablate--sweep=10,nan", lambda c: ["iar", "ablate", str(c.iar_run()), *ABL, "--sweep", "10,nan"],
     names=["--sweep"])

# every float of a sweep spec (TOML has nan and inf literals)
for _slug, _kw, _name in [
    ("train.lr=nan", {"train": "lr = nan"}, "lr"),
    ("train.lr=inf", {"train": "lr = inf"}, "lr"),
    ("train.lr=-inf", {"train": "lr = -inf"}, "lr"),
    ("train.warmup_frac=nan", {"train": "warmup_frac = nan"}, "warmup_frac"),
    ("train.final_lr=nan", {"train": "final_lr = nan"}, "final_lr"),
    ("train.clip=nan", {"train": "clip = nan"}, "clip"),
    ("train.threshold=nan", {"train": "threshold = nan"}, "threshold"),
    ("data.variance=nan", {"data": "variance = nan"}, "variance"),
    ("data.variance=inf", {"data": "variance = inf"}, "variance"),
    ("model.sizes=nan", {"sizes": "[0.5, nan]"}, "sizes"),
]:
    case("nan", f"sweep-run-spec-{_slug}",
         lambda c, kw=_kw: ["sweep", "run", c.spec(mf.spec_text(**kw)), "--out", c.p("sw"), "--workers", "1"],
         names=[_name])


# --- unwritable output paths --------------------------------------------------------------------------

PROC, SYS = "/proc/memlab_x", "/sys/memlab_x"
for _opt, _file in (("--out", "result.json"), ("--plot", "fig.png")):
    case("unwritable", f"crossover-predict{_opt}-under-a-file",
         lambda c, o=_opt, f=_file: [*CP, o, c.blocker(f)], names=["blocker"])
    case("unwritable", f"crossover-predict{_opt}-under-proc",
         lambda c, o=_opt, f=_file: [*CP, o, f"{PROC}/{f}"], names=[PROC])
case("unwritable", "train--out-under-a-file", lambda c: ["train", *TR, "--out", c.blocker("run")], names=["blocker"])
case("unwritable", "train--out-under-proc", lambda c: ["train", *TR, "--out", f"{PROC}/run"], names=[PROC])
case("unwritable", "train--out-under-sys", lambda c: ["train", *TR, "--out", f"{SYS}/run"], names=[SYS])
case("unwritable", "sweep-run--out-under-a-file",
     lambda c: ["sweep", "run", c.spec(), "--out", c.blocker("sw"), "--workers", "1"], names=["blocker"])
case("unwritable", "sweep-run--out-under-proc",
     lambda c: ["sweep", "run", c.spec(), "--out", f"{PROC}/sw", "--workers", "1"], names=[PROC])
case("unwritable", "phase-plot--out-under-a-file",
     lambda c: ["phase", "plot", str(c.sweep()), "--out", c.blocker("fig.png"), "--boot", "20"], names=["blocker"])
case("unwritable", "phase-plot--out-under-proc",
     lambda c: ["phase", "plot", str(c.sweep()), "--out", f"{PROC}/fig.png", "--boot", "20"], names=[PROC])
case("unwritable", "iar-train--out-under-a-file", lambda c: ["iar", "train", *IT, "--out", c.blocker("run")],
     names=["blocker"])
case("unwritable", "iar-train--out-under-proc", lambda c: ["iar", "train", *IT, "--out", f"{PROC}/run"], names=[PROC])


def _make_file_in_place_of(sub: str):
    def prepare(c: Ctx):
        target = c.iar_run() / sub
        if target.is_dir():
            shutil.rmtree(target)
        target.write_text("a regular file where the output directory goes\n")
    return prepare


for _cmd, _flags in (("localize", LOC), ("extract", EXT), ("ablate", ABL)):
    case("unwritable", f"iar-{_cmd}-output-dir-is-a-file",
         lambda c, cmd=_cmd, fl=_flags: ["iar", cmd, str(c.iar_run()), *fl],
         prepare=_make_file_in_place_of(_cmd), names=[_cmd])


# --- corrupt files of every saved format ----------------------------------------------------------------

# a malformed TOML as --config, on every command that has options (`sweep template` has none)
CONFIG_ARGV: dict[str, Callable[[Ctx], list[str]]] = {
    "crossover predict": lambda c: [*CP],
    "train": lambda c: ["train", *TR, "--out", c.p("run")],
    "sweep run": lambda c: ["sweep", "run", c.spec(), "--out", c.p("sw"), "--workers", "1"],
    "phase summary": lambda c: ["phase", "summary", str(c.sweep()), "--boot", "20"],
    "phase plot": lambda c: ["phase", "plot", str(c.sweep()), "--out", c.p("fig.png"), "--boot", "20"],
    "phase time": lambda c: ["phase", "time", str(c.sweep()), "--out", c.p("fig.png"), "--boot", "20"],
    "iar train": lambda c: ["iar", "train", *IT, "--out", c.p("run")],
    "iar localize": lambda c: ["iar", "localize", str(c.iar_run()), *LOC],
    "iar extract": lambda c: ["iar", "extract", str(c.iar_run()), *EXT],
    "iar ablate": lambda c: ["iar", "ablate", str(c.iar_run()), *ABL],
}
for _cmd, _argv in CONFIG_ARGV.items():
    case("corrupt", f"{_cmd.replace(' ', '-')}--config-malformed-toml",
         lambda c, a=_argv: [*a(c), "--config", c.bad_toml()], names=["bad.toml"], forbid=NEW_INTERFACE)

case("corrupt", "sweep-run-spec-malformed-toml",
     lambda c: ["sweep", "run", c.bad_toml(), "--out", c.p("sw"), "--workers", "1"], names=["bad.toml"])


def _train_resume(c: Ctx) -> list[str]:
    return ["train", *TR, "--resume", "--out", str(c.train_run())]


def _unfinished_train(c: Ctx) -> Path:
    """The train run as a kill before its end leaves it: no metrics.json."""
    run = c.train_run()
    (run / "metrics.json").unlink()
    return run


case("corrupt", "train--resume-config.json-garbage", _train_resume,
     prepare=lambda c: mf.garble(c.train_run() / "config.json"), names=["config.json"])
case("corrupt", "train--resume-metrics.json-truncated", _train_resume,
     prepare=lambda c: mf.truncate(c.train_run() / "metrics.json"), names=["metrics.json"])
case("corrupt", "train--resume-progress.json-truncated", _train_resume,
     prepare=lambda c: mf.truncate(mf.find(_unfinished_train(c), "progress.json")), names=["progress.json"])
case("corrupt", "train--resume-orbax-metadata-garbage", _train_resume,
     prepare=lambda c: [mf.garble(p) for p in mf.latest_orbax_step(_unfinished_train(c)).rglob("_METADATA")],
     names=["ckpt"])
case("corrupt", "train--resume-orbax-data-truncated", _train_resume,
     prepare=lambda c: [mf.truncate(p) for p in mf.latest_orbax_step(_unfinished_train(c)).rglob("d/*")
                        if p.is_file()],
     names=["ckpt"])
case("corrupt", "crossover-predict--template-source-garbage-npy",
     lambda c: [*CP, "--data", "templates", "--template-source", c.file("bad.npy", mf.GARBAGE)], names=["bad.npy"])
case("corrupt", "train--template-source-garbage-npz",
     lambda c: ["train", *TR, "--data", "templates", "--template-source", c.file("bad.npz", mf.GARBAGE),
                "--out", c.p("run")], names=["bad.npz"])


def _iar_resume(c: Ctx) -> list[str]:
    return ["iar", "train", *IT, "--resume", "--out", str(c.iar_run())]


def _unfinished_iar(c: Ctx) -> Path:
    """The IAR run as a kill after the model's last epoch checkpoint leaves it: state/ saved, the final
    model/ not yet published, no metrics.json and no figures."""
    run = c.iar_run()
    shutil.rmtree(run / "model")
    for f in ("metrics.json", "curves.png", "samples.png"):
        (run / f).unlink()
    return run


case("corrupt", "iar-train--resume-state-optimizer.safetensors-truncated", _iar_resume,
     prepare=lambda c: mf.truncate(mf.one((_unfinished_iar(c) / "state" / "model").glob("epoch-*/optimizer.safetensors"),
                                          "model optimizer state")),
     names=["optimizer.safetensors"])
case("corrupt", "iar-train--resume-state-weights-garbage", _iar_resume,
     prepare=lambda c: mf.garble(mf.one((_unfinished_iar(c) / "state" / "model").glob("epoch-*/weights/*.safetensors"),
                                        "model state weights")),
     names=["diffusion_pytorch_model.safetensors"])
case("corrupt", "iar-train--resume-state-latest.json-truncated", _iar_resume,
     prepare=lambda c: mf.truncate(_unfinished_iar(c) / "state" / "model" / "latest.json"), names=["latest.json"])
case("corrupt", "iar-train--resume-tokenizer-safetensors-garbage", _iar_resume,
     prepare=lambda c: mf.garble(_unfinished_iar(c) / "tokenizer" / "diffusion_pytorch_model.safetensors"),
     names=["diffusion_pytorch_model.safetensors"])
case("corrupt", "iar-train--resume-config.json-garbage", _iar_resume,
     prepare=lambda c: mf.garble(c.iar_run() / "config.json"), names=["config.json"])
case("corrupt", "iar-train--resume-metrics.json-truncated", _iar_resume,
     prepare=lambda c: mf.truncate(c.iar_run() / "metrics.json"), names=["metrics.json"])


def _iar(cmd: str, flags: list[str]):
    return lambda c: ["iar", cmd, str(c.iar_run()), *flags]


case("corrupt", "iar-localize-model-safetensors-truncated", _iar("localize", LOC),
     prepare=lambda c: mf.truncate(c.iar_run() / "model" / "diffusion_pytorch_model.safetensors"),
     names=["diffusion_pytorch_model.safetensors"])
case("corrupt", "iar-localize-model-config.json-garbage", _iar("localize", LOC),
     prepare=lambda c: mf.garble(c.iar_run() / "model" / "config.json"), names=["config.json"])
case("corrupt", "iar-localize-run-config.json-garbage", _iar("localize", LOC),
     prepare=lambda c: mf.garble(c.iar_run() / "config.json"), names=["config.json"])


def _unitmem_state(c: Ctx):
    """A damaged running-sums file of an interrupted UnitMem pass, where localize looks for it (state/)."""
    c.iar_run()
    c.file("irun/localize/state/unitmem_state.npz", mf.GARBAGE)


case("corrupt", "iar-localize-unitmem_state.npz-garbage", _iar("localize", LOC), prepare=_unitmem_state,
     names=["unitmem_state.npz"])
case("corrupt", "iar-extract-tokenizer-safetensors-garbage", _iar("extract", EXT),
     prepare=lambda c: mf.garble(c.iar_run() / "tokenizer" / "diffusion_pytorch_model.safetensors"),
     names=["diffusion_pytorch_model.safetensors"])
case("corrupt", "iar-extract-tokenizer-config.json-truncated", _iar("extract", EXT),
     prepare=lambda c: mf.truncate(c.iar_run() / "tokenizer" / "config.json"), names=["config.json"])
case("corrupt", "iar-ablate-unitmem.parquet-truncated", _iar("ablate", ABL),
     prepare=lambda c: mf.truncate(c.iar_run() / "localize" / "unitmem.parquet"), names=["unitmem.parquet"])
case("corrupt", "iar-ablate-rows.json-truncated", _iar("ablate", ABL),
     prepare=lambda c: mf.truncate(mf.find(c.iar_run() / "ablate", "rows.json")), names=["rows.json"])
case("corrupt", "iar-ablate-config.json-garbage", _iar("ablate", ABL),
     prepare=lambda c: mf.garble(c.iar_run() / "ablate" / "config.json"), names=["config.json"])


def _rows_file(c: Ctx) -> Path:
    return mf.one((c.sweep() / "rows").glob("*.parquet"), "sweep row file")


def _prediction_file(c: Ctx) -> Path:
    return mf.one((c.sweep() / "predictions").glob("*.json"), "sweep prediction")


def _damage(pick: Callable[[Ctx], Path], how):
    """Damage the file `pick` finds once the fixture is copied; its name is what "<damaged>" checks for."""
    def prepare(c: Ctx):
        c.damaged = how(pick(c)).name
    return prepare


_SUMMARY = lambda c: ["phase", "summary", str(c.sweep()), "--boot", "20"]
_PLOT = lambda c: ["phase", "plot", str(c.sweep()), "--out", c.p("fig.png"), "--boot", "20"]
_RERUN = lambda c: ["sweep", "run", c.spec(), "--out", str(c.sweep()), "--workers", "1"]

case("corrupt", "phase-summary-rows-parquet-truncated", _SUMMARY,
     prepare=_damage(_rows_file, mf.truncate), names=["<damaged>"])
case("corrupt", "phase-summary-config.json-garbage", _SUMMARY,
     prepare=lambda c: mf.garble(c.sweep() / "config.json"), names=["config.json"])
case("corrupt", "phase-summary-prediction-json-truncated", _SUMMARY,
     prepare=_damage(_prediction_file, mf.truncate), names=["<damaged>"])
case("corrupt", "phase-plot-rows-parquet-garbage", _PLOT,
     prepare=_damage(_rows_file, mf.garble), names=["<damaged>"])
case("corrupt", "sweep-run-resume-rows-parquet-truncated", _RERUN,
     prepare=_damage(_rows_file, mf.truncate), names=["<damaged>"])
case("corrupt", "sweep-run-resume-config.json-garbage", _RERUN,
     prepare=lambda c: mf.garble(c.sweep() / "config.json"), names=["config.json"])
case("corrupt", "sweep-run-resume-prediction-json-truncated", _RERUN,
     prepare=_damage(_prediction_file, mf.truncate), names=["<damaged>"])
case("corrupt", "sweep-run--resume--out-config.json-garbage",
     lambda c: ["sweep", "run", "--resume", "--out", str(c.sweep()), "--workers", "1"],
     prepare=lambda c: mf.garble(c.sweep() / "config.json"), names=["config.json"], forbid=NEW_INTERFACE)


def _image_folder(c: Ctx) -> str:
    import numpy as np
    from PIL import Image

    folder = c.root / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(14):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"a{i:02d}.png")
    (folder / "b.png").write_bytes(mf.GARBAGE)  # a .png that is not an image
    return f"folder:{folder}"


case("corrupt", "iar-train--data-folder-unreadable-image",
     lambda c: ["iar", "train", *IT, "--data", _image_folder(c), "--out", c.p("run")], names=["b.png"])
case("corrupt", "iar-train--data-npz-garbage",
     lambda c: ["iar", "train", *IT, "--data", "npz:" + c.file("bad.npz", mf.GARBAGE), "--out", c.p("run")],
     names=["bad.npz"])


# --- wrong kind of directory ----------------------------------------------------------------------------

case("wrong-kind", "sweep-run--out-train-run",
     lambda c: ["sweep", "run", c.spec(), "--out", str(c.train_run()), "--workers", "1"])
case("wrong-kind", "sweep-run--out-iar-run",
     lambda c: ["sweep", "run", c.spec(), "--out", str(c.iar_run()), "--workers", "1"])
case("wrong-kind", "sweep-run--resume--out-train-run",
     lambda c: ["sweep", "run", "--resume", "--out", str(c.train_run()), "--workers", "1"], forbid=NEW_INTERFACE)
for _cmd, _flags in (("localize", LOC), ("extract", EXT), ("ablate", ABL)):
    case("wrong-kind", f"iar-{_cmd}-on-train-run",
         lambda c, cmd=_cmd, fl=_flags: ["iar", cmd, str(c.train_run()), *fl], forbid=["unknown key"])
case("wrong-kind", "iar-localize-on-sweep", lambda c: ["iar", "localize", str(c.sweep()), *LOC])
case("wrong-kind", "train--resume-on-iar-run", lambda c: ["train", *TR, "--resume", "--out", str(c.iar_run())],
     forbid=["differs in"])
case("wrong-kind", "train--resume-on-sweep", lambda c: ["train", *TR, "--resume", "--out", str(c.sweep())])
case("wrong-kind", "iar-train--resume-on-train-run",
     lambda c: ["iar", "train", *IT, "--resume", "--out", str(c.train_run())], forbid=["unknown key"])
case("wrong-kind", "phase-summary-on-iar-run", lambda c: ["phase", "summary", str(c.iar_run())])
case("wrong-kind", "phase-summary-on-train-run", lambda c: ["phase", "summary", str(c.train_run())])
case("wrong-kind", "phase-plot-on-train-run",
     lambda c: ["phase", "plot", str(c.train_run()), "--out", c.p("fig.png")])
case("wrong-kind", "phase-time-on-train-run",
     lambda c: ["phase", "time", str(c.train_run()), "--out", c.p("fig.png")])


# --- resume: missing, empty, differing flags ------------------------------------------------------------

case("resume", "train--resume--out-nonexistent", lambda c: ["train", "--resume", "--out", "nonexistent"],
     names=["nonexistent"])
case("resume", "iar-train--resume--out-missing", lambda c: ["iar", "train", "--resume", "--out", "missing"],
     names=["missing"])
case("resume", "sweep-run--resume--out-missing", lambda c: ["sweep", "run", "--resume", "--out", "missing"],
     names=["missing"], forbid=NEW_INTERFACE)
case("resume", "sweep-run-spec--resume--out-missing",
     lambda c: ["sweep", "run", c.spec(), "--resume", "--out", "missing", "--workers", "1"],
     names=["missing"], forbid=NEW_INTERFACE)
case("resume", "train--resume--out-empty", lambda c: ["train", *TR, "--resume", "--out", "empty"],
     prepare=lambda c: (c.root / "empty").mkdir(), names=["empty"])
case("resume", "iar-train--resume--out-empty", lambda c: ["iar", "train", "--resume", "--out", "empty"],
     prepare=lambda c: (c.root / "empty").mkdir(), names=["empty"])
case("resume", "sweep-run--resume--out-empty", lambda c: ["sweep", "run", "--resume", "--out", "empty"],
     prepare=lambda c: (c.root / "empty").mkdir(), names=["empty"], forbid=NEW_INTERFACE)
case("resume", "train--resume-differing--steps",
     lambda c: ["train", "--resume", "--out", str(c.train_run()), "--steps", "40"], names=["--steps"])
case("resume", "iar-train--resume-differing--lr",
     lambda c: ["iar", "train", "--resume", "--out", str(c.iar_run()), "--lr", "0.01"], names=["--lr"])
case("resume", "sweep-run-another-spec-into-sweep",
     lambda c: ["sweep", "run", c.spec(mf.spec_text(sizes="[0.3, 1.0]")), "--out", str(c.sweep()), "--workers", "1"])


# --- through a real process: the exit status itself -------------------------------------------------------

case("subprocess", "train--lr=nan", lambda c: ["train", *TR, "--lr=nan", "--out", "run"], names=["--lr"],
     subprocess=True)
case("subprocess", "crossover-predict--out-under-proc", lambda c: [*CP, "--out", f"{PROC}/result.json"],
     names=[PROC], subprocess=True)
case("subprocess", "phase-summary-rows-parquet-truncated", _SUMMARY,
     prepare=_damage(_rows_file, mf.truncate), names=["<damaged>"], subprocess=True)
case("subprocess", "iar-extract-on-train-run", lambda c: ["iar", "extract", str(c.train_run()), *EXT],
     forbid=["unknown key"], subprocess=True)


# --- the test ---------------------------------------------------------------------------------------------

def test_the_table_has_every_kind_and_at_least_60_cases():
    kinds = {c.kind for c in CASES}
    assert {"nan", "unwritable", "corrupt", "wrong-kind", "resume", "subprocess"} <= kinds
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)


def test_the_nan_cases_cover_every_float_option():
    """Every command with a float option has a valid invocation in FLOAT_OPTIONS to add the bad value to
    (options parsed some other way than `type=float` are listed there by hand)."""
    missing = {cmd for cmd, _ in parser_float_options()} - set(FLOAT_OPTIONS)
    assert not missing, f"add these commands to FLOAT_OPTIONS: {sorted(missing)}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_invocation_exits_2_with_one_line_and_writes_nothing(case: Case, tmp_path, request, capsys):
    ctx = Ctx(tmp_path, request)
    if case.prepare:
        case.prepare(ctx)
    argv = case.argv(ctx)
    before = mf.listing(tmp_path)
    out = mf.run_subprocess(argv, tmp_path) if case.subprocess else mf.run_in_process(argv, tmp_path, capsys)
    after = mf.listing(tmp_path)

    message = out.lines[0] if out.lines else ""
    problems = []
    if out.rc != 2:
        problems.append(f"exit status {out.rc}")
    if len(out.lines) != 1:
        problems.append(f"{len(out.lines)} lines on stderr")
    elif not message.startswith("memlab: error: "):
        problems.append("the line does not start with 'memlab: error: '")
    if "Traceback" in out.stderr + out.stdout:
        problems.append(f"traceback ({out.exception})")
    written = mf.changes(before, after)
    if written:
        problems.append(f"file system changed: {' '.join(written)}")
    if out.rc == 2 and len(out.lines) == 1:  # the message is worth reading only if it is the one line
        for name in case.names:
            name = ctx.damaged if name == "<damaged>" else name
            if name not in message:
                problems.append(f"message does not name {name!r}")
        for word in case.forbid:
            if word in message:
                problems.append(f"message says {word!r}")
    assert not problems, (f"memlab {' '.join(argv)}: " + "; ".join(problems)
                          + f" || stderr[0]: {message[:300]!r}")
