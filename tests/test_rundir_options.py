"""memlab.rundir (kinds, writability, resume modes) and memlab.options (flags derived from config
dataclasses, TOML below flags, field errors renamed to what the user typed)."""

import argparse
import json
import math
from dataclasses import dataclass

import pytest

from memlab.errors import FieldError, UsageError, check_float, check_int
from memlab.options import Section, add_config_flag, add_section, from_dict, option, resolve
from memlab.rundir import RunDir, check_writable, kind_of


@dataclass(frozen=True)
class Inner:
    rate: float = option(0.5, "a rate", unit="per step")
    seed: int = option(0, "seed")

    def __post_init__(self):
        check_float("rate", self.rate, 0.0, 1.0)
        check_int("seed", self.seed, 0)


@dataclass(frozen=True)
class Outer:
    inner: Inner = option(default_factory=Inner, cli=False)
    count: int = option(3, "how many", flag="--n")
    sizes: tuple[int, ...] = option((1, 2), "sizes")
    flip: bool = option(True, "flip")

    def __post_init__(self):
        check_int("count", self.count, 1)


SECTIONS = [Section("inner", Inner), Section("outer", Outer, follow={"inner": ("inner", None)})]


def _parser():
    p = argparse.ArgumentParser()
    add_config_flag(p, ["inner", "outer"])
    for s in SECTIONS:
        add_section(p, s)
    return p


def test_flags_come_from_fields_with_one_default_each():
    p = _parser()
    helps = {a.option_strings[0]: a.help for a in p._actions if a.option_strings}
    assert set(helps) >= {"--rate", "--seed", "--n", "--sizes", "--flip", "--config"}
    assert helps["--rate"] == "a rate [per step] (default 0.5)" and helps["--sizes"].endswith("(default 1,2)")
    args = p.parse_args([])
    assert all(getattr(args, s.dest(f.name)) is None for s in SECTIONS for f, _ in s.fields())
    cfg = resolve(args, SECTIONS)
    assert cfg["outer"] == Outer() and cfg["outer"].inner is cfg["inner"]
    cfg = resolve(p.parse_args(["--n", "5", "--sizes", "4,8", "--no-flip", "--rate", "0.25"]), SECTIONS)
    assert (cfg["outer"].count, cfg["outer"].sizes, cfg["outer"].flip, cfg["inner"].rate) == (5, (4, 8), False, 0.25)


def test_toml_tables_sit_below_flags_and_name_their_keys(tmp_path):
    p = _parser()
    toml = {"inner": {"rate": 0.75, "seed": 4}, "outer": {"count": 7, "sizes": [3]}}
    cfg = resolve(p.parse_args(["--seed", "9"]), SECTIONS, toml=toml)
    assert (cfg["inner"].rate, cfg["inner"].seed, cfg["outer"].count, cfg["outer"].sizes) == (0.75, 9, 7, (3,))
    with pytest.raises(UsageError, match=r"unknown key 'colour' in \[outer\] of c.toml; allowed: count, flip"):
        resolve(p.parse_args(["--config", "c.toml"]), SECTIONS, toml={"outer": {"colour": 1}})
    with pytest.raises(UsageError, match=r"^rate in \[inner\] of c.toml must be a number in \[0, 1\], got nan$"):
        resolve(p.parse_args(["--config", "c.toml"]), SECTIONS, toml={"inner": {"rate": math.nan}})


@pytest.mark.parametrize("argv,message", [
    (["--rate", "nan"], "--rate must be a number in [0, 1], got nan"),
    (["--rate", "inf"], "--rate must be finite in [0, 1], got inf"),
    (["--rate=-inf"], "--rate must be finite in [0, 1], got -inf"),
    (["--n", "0"], "--n must be an integer >= 1, got 0"),
    (["--seed", "-1"], "--seed must be an integer >= 0, got -1"),
])
def test_field_errors_are_renamed_to_the_flag(argv, message):
    with pytest.raises(UsageError) as e:
        resolve(_parser().parse_args(argv), SECTIONS)
    assert str(e.value) == message and not isinstance(e.value, FieldError)


def test_resume_reads_the_saved_values_and_refuses_differing_flags():
    p = _parser()
    saved = {"inner": {"rate": 0.125, "seed": 2}, "outer": {"count": 4, "sizes": [5, 6], "flip": False}}
    cfg = resolve(p.parse_args([]), SECTIONS, saved=saved)
    assert (cfg["inner"].rate, cfg["outer"].sizes, cfg["outer"].flip) == (0.125, (5, 6), False)
    assert resolve(p.parse_args(["--sizes", "5,6", "--n", "4"]), SECTIONS, saved=saved) == cfg
    with pytest.raises(UsageError, match=r"differ: --rate \(run: 0.125, given: 0.5\); --n \(run: 4, given: 1\)"):
        resolve(p.parse_args(["--rate", "0.5", "--n", "1"]), SECTIONS, saved=saved, saved_where="R/config.json")


def test_from_dict_makes_tuples_and_nested_configs():
    cfg = from_dict(Outer, {"inner": {"rate": 1.0}, "sizes": [9, 10]})
    assert cfg.inner == Inner(rate=1.0) and cfg.sizes == (9, 10)
    with pytest.raises(UsageError, match="spec: count must be an integer >= 1"):
        from_dict(Outer, {"count": 0}, "spec", qualify=True)


def test_kinds_are_recorded_and_recognised_in_old_layouts(tmp_path):
    rd = RunDir(tmp_path / "a", "train")
    rd.start({"data": {}, "train": {"model": "mixture"}})
    assert json.loads(rd.config_file.read_text())["kind"] == "train" and kind_of(rd.path) == "train"
    assert rd.saved_config() == {"data": {}, "train": {"model": "mixture"}}
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_text('{"data": {}, "train": {"arch": "raster"}}')
    assert kind_of(old) == "iar-train"
    (old / "config.json").write_text('{"ablate": {}, "extract": {}, "quality": {}}')
    assert kind_of(old) == "iar-ablate"
    sweep = tmp_path / "sw"
    sweep.mkdir()
    (sweep / "spec.json").write_text("{}")
    assert kind_of(sweep) == "sweep" and kind_of(tmp_path) is None


def test_open_says_what_it_may_do_and_writes_nothing(tmp_path):
    assert RunDir.open(tmp_path / "new", "train")[1] == "fresh" and not (tmp_path / "new").exists()
    rd = RunDir(tmp_path / "run", "train")
    rd.start({"x": 1})
    assert RunDir.open(rd.path, "train", resume=True)[1] == "resume"
    rd.finish({"done": True})
    assert RunDir.open(rd.path, "train", resume=True)[1] == "done"
    assert RunDir.open(rd.path, "train", continue_same=True)[1] == "done"
    with pytest.raises(UsageError, match="already holds a `memlab train` run"):
        RunDir.open(rd.path, "train")
    with pytest.raises(UsageError, match=r"is a `memlab train` run \(diffusion\), not a `memlab iar train` run"):
        RunDir.open(rd.path, "iar-train", resume=True)
    with pytest.raises(UsageError, match="does not exist, so there is no run to continue"):
        RunDir.open(tmp_path / "nowhere", "train", resume=True)
    rd.start({"x": 2})  # starting again: the old metrics.json no longer marks it finished
    assert not rd.is_done()


def test_unwritable_paths_are_refused_and_the_probe_leaves_no_trace(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is a file, not a directory"):
        check_writable(tmp_path / "file" / "out", "--out")
    with pytest.raises(UsageError, match="cannot be written"):
        check_writable(__import__("pathlib").Path("/proc/memlab_probe/out"), "--out")
    with pytest.raises(UsageError, match="must be a file path, got the directory"):
        check_writable(tmp_path, "--plot", is_dir=False)
    before = (sorted(p.name for p in tmp_path.iterdir()), tmp_path.stat().st_mtime_ns)
    check_writable(tmp_path / "deep" / "run", "--out")
    check_writable(tmp_path / "result.json", "--out", is_dir=False)
    assert (sorted(p.name for p in tmp_path.iterdir()), tmp_path.stat().st_mtime_ns) == before


def test_a_config_file_with_tables_of_another_command_is_refused():
    with pytest.raises(UsageError, match=r"unknown table \[train\] in c.toml; allowed: \[inner\], \[outer\]"):
        resolve(_parser().parse_args(["--config", "c.toml"]), SECTIONS, toml={"train": {"lr": 1.0}})
