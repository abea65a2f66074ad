"""Checked loads of saved state (issue 10): a missing, unreadable or damaged JSON, TOML, npz or parquet file
is one UsageError whose single line names the file and what is wrong, and reading it writes nothing."""

import json

import numpy as np
import pandas as pd
import pytest

from memlab.cli import main
from memlab.config import load_toml
from memlab.errors import UsageError
from memlab.io import error_reason, read_json, read_npz, read_parquet, read_text
from tests.cli.malformed_fixtures import GARBAGE, listing, truncate


def one_line_error(call, *needles) -> str:
    with pytest.raises(UsageError) as err:
        call()
    msg = str(err.value)
    assert "\n" not in msg and all(n in msg for n in needles), msg
    return msg


# --- JSON --------------------------------------------------------------------------------------------

def test_read_json_names_the_file_and_the_problem(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"a": [1, 2.5, None], "b": float("nan")}))
    assert read_json(good)["a"] == [1, 2.5, None]  # NaN stays allowed, as to_json writes it

    cut = tmp_path / "cut.json"
    cut.write_text(json.dumps({"epoch": 3, "rows": [1, 2, 3]}))
    truncate(cut)
    one_line_error(lambda: read_json(cut), f"malformed JSON in {cut}:", "line 1")
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(GARBAGE)
    one_line_error(lambda: read_json(garbage), f"malformed JSON in {garbage}: not UTF-8")
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"")
    one_line_error(lambda: read_json(empty), f"malformed JSON in {empty}")
    one_line_error(lambda: read_json(tmp_path / "absent.json"), str(tmp_path / "absent.json"), "does not exist")
    one_line_error(lambda: read_json(tmp_path), f"cannot read JSON file {tmp_path}")  # a directory
    with pytest.raises(ValueError):  # UsageError is a ValueError: callers that caught those still do
        read_json(garbage)


def test_read_text_refuses_non_utf8(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_bytes(b"caf\xe9")
    one_line_error(lambda: read_text(f, "notes"), f"notes {f} is not UTF-8 text (byte 0xe9 at offset 3)")


# --- TOML --------------------------------------------------------------------------------------------

def test_load_toml_malformed_non_utf8_and_unreadable(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('steps = [1, 2\nlr = "unterminated\n')
    one_line_error(lambda: load_toml(bad), f"malformed TOML in {bad}")
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'name = "caf\xe9"\n')
    one_line_error(lambda: load_toml(latin), f"config file {latin} is not UTF-8")
    one_line_error(lambda: load_toml(tmp_path / "none.toml"), "config file does not exist")
    one_line_error(lambda: load_toml(tmp_path), "config file does not exist")  # a directory is not a file


def test_cli_with_a_non_utf8_config_file_exits_2_with_one_line(tmp_path, capsys):
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'[train]\nmodel = "caf\xe9"\n')
    before = listing(tmp_path)
    assert main(["train", "--config", str(latin), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(latin) in err and "Traceback" not in err
    assert listing(tmp_path) == before


# --- npz ---------------------------------------------------------------------------------------------

@pytest.fixture
def npz(tmp_path):
    path = tmp_path / "state.npz"
    np.savez(path, progress=np.array('{"next_start": 4}'), sums_0=np.arange(24.0).reshape(2, 3, 4))
    return path


def test_read_npz_round_trip_and_damage(npz, tmp_path):
    arrays = read_npz(npz)
    assert set(arrays) == {"progress", "sums_0"} and arrays["sums_0"].shape == (2, 3, 4)
    data = npz.read_bytes()
    cases = {"truncated": data[: len(data) // 2], "garbage": GARBAGE, "empty": b"", "text": b"hello\n",
             "bad-crc": data[:100] + bytes(b ^ 0xFF for b in data[100:140]) + data[140:]}
    for name, content in cases.items():
        f = tmp_path / f"{name}.npz"
        f.write_bytes(content)
        one_line_error(lambda f=f: read_npz(f, "UnitMem state"), f"damaged UnitMem state {f}: ")
    one_line_error(lambda: read_npz(tmp_path / "absent.npz"), "does not exist")
    np.savez(tmp_path / "pickled.npz", obj=np.array([{"a": 1}], dtype=object))
    one_line_error(lambda: read_npz(tmp_path / "pickled.npz"), "damaged npz file", "allow_pickle=False")


# --- parquet -----------------------------------------------------------------------------------------

def test_read_parquet_damage(tmp_path):
    good = tmp_path / "good.parquet"
    pd.DataFrame({"status": ["ok", "failed"], "size": [1, 2]}).to_parquet(good)
    assert list(read_parquet(good, ["status"])["status"]) == ["ok", "failed"]
    for name, content in {"truncated": good.read_bytes()[:200], "garbage": GARBAGE, "empty": b""}.items():
        f = tmp_path / f"{name}.parquet"
        f.write_bytes(content)
        one_line_error(lambda f=f: read_parquet(f, what="row file"), f"damaged row file {f}: ")
    one_line_error(lambda: read_parquet(good, ["missing"]), f"damaged parquet file {good}: ")
    one_line_error(lambda: read_parquet(tmp_path / "absent.parquet"), "does not exist")


def test_error_reason_takes_the_innermost_cause_first_line():
    try:
        try:
            raise ValueError("OUT_OF_RANGE: byte range [0, 10) is not valid\nspec: {...}")
        except ValueError as inner:
            raise RuntimeError("Encountered error while reading array index") from inner
    except RuntimeError as e:
        assert error_reason(e) == "OUT_OF_RANGE: byte range [0, 10) is not valid"
    assert error_reason(KeyError()) == "KeyError"
    assert error_reason(RuntimeError("Error(s) in loading state_dict for M:\n\tsize mismatch for w")) == \
        "Error(s) in loading state_dict for M: size mismatch for w"
