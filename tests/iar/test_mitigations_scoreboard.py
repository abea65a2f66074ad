"""`memlab iar mitigations BASE --method NAME=RUN`: mitigation runs on the base run's yardstick. A copy of
the base run scores exactly as the unedited model (zero cost, same extraction); a run retrained on the base
tokenizer gets a row and verdicts against the same random cloud; a run with its own tokenizer, a missing
yardstick or a malformed --method is one line and exit 2 with nothing written."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from memlab.cli import main

torch.set_num_threads(1)
YARD = ["--localizer", "unitmem", "--ks", "10", "--factors", "0", "--cloud-ks", "5,20", "--n-samples", "16",
        "--n-boot", "50", "--candidates", "4"]
TRAIN = ["--n-train", "16", "--n-heldout", "16", "--duplicates", "3", "--n-duplicated", "2", "--arch", "next-scale",
         "--epochs", "2", "--tokenizer-epochs", "1", "--width", "32", "--depth", "2", "--heads", "2",
         "--codebook-size", "16", "--latent-channels", "4", "--tokenizer-channels", "8,8,8", "--scales", "1,2,4"]


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    root = tmp_path_factory.mktemp("mit")
    base = root / "base"
    assert main(["iar", "train", *TRAIN, "--out", str(base)]) == 0
    assert main(["iar", "ablate", str(base), *YARD]) == 0
    shutil.copytree(base, root / "copy", ignore=shutil.ignore_patterns("yardstick", "localize", "cache"))
    assert main(["iar", "train", *TRAIN, "--seed", "1", "--epochs", "3", "--tokenizer-from", str(base),
                 "--out", str(root / "retrained")]) == 0
    return root


def test_a_copy_scores_as_the_unedited_model_and_a_retrained_run_is_judged_against_the_cloud(setting, capsys):
    base = setting / "base"
    assert main(["iar", "mitigations", str(base), "--method", f"copy={setting / 'copy'}",
                 "--method", f"retrained={setting / 'retrained'}", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["baseline_matches_edits"] is True
    board = pd.read_csv(base / "mitigations" / "mitigations.csv").set_index("method")
    assert list(board["kind"]) == ["unedited", "unit edit", "mitigation", "mitigation"]
    copy, unedited = board.loc["copy"], board.loc["unedited"]
    for col in ("T_extracted", "C_extracted", "heldout_nll", "fd", "sample_nll"):
        assert copy[col] == pytest.approx(unedited[col], abs=1e-6), col
    for cost in ("cost_heldout_nll", "cost_sample_nll", "cost_fd"):
        assert abs(copy[cost]) < 1e-6
    assert board.loc["retrained", "heldout_nll"] != pytest.approx(unedited["heldout_nll"])
    verdicts = pd.read_csv(base / "mitigations" / "verdicts.csv")
    assert {"copy", "retrained", "unitmem"} <= set(verdicts["method"])
    assert (base / "mitigations" / "pareto.png").stat().st_size > 0
    # the yardstick's own unit-edit rows come along unchanged
    edits = pd.read_parquet(base / "yardstick" / "yardstick.parquet")
    edit = edits[edits["method"] == "unitmem"].iloc[0]
    assert np.isclose(board.loc["unitmem", "T_extracted"], edit["T_extracted"])
    # resumed: the rows are reused, the numbers are the same
    assert main(["iar", "mitigations", str(base), "--method", f"copy={setting / 'copy'}",
                 "--method", f"retrained={setting / 'retrained'}", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verdicts"] == metrics["verdicts"]



def test_rows_are_kept_per_run_so_a_smaller_or_larger_method_list_reuses_them(setting, capsys, monkeypatch):
    import memlab.iar.mitigate.scoreboard as sb

    base, copy = setting / "base", setting / "copy"
    assert main(["iar", "mitigations", str(base), "--method", f"copy={copy}", "--tag", "grow"]) == 0
    first = pd.read_csv(base / "mitigations-grow" / "mitigations.csv").set_index("method").loc["copy"]

    def must_not_score(*a, **k):
        raise AssertionError("a finished run was scored again")
    monkeypatch.setattr(sb, "score_model", must_not_score)
    assert main(["iar", "mitigations", str(base), "--method", f"copy={copy}", "--tag", "grow"]) == 0
    again = pd.read_csv(base / "mitigations-grow" / "mitigations.csv").set_index("method").loc["copy"]
    assert again.equals(first)
    with pytest.raises(AssertionError, match="scored again"):  # a new run is scored; the kept one is not
        main(["iar", "mitigations", str(base), "--method", f"copy={copy},retrained={setting / 'retrained'}",
              "--tag", "grow"])


def _one_line(capsys, code, needle):
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and needle in err, err


def test_bad_input_exits_2_and_writes_nothing(setting, tmp_path, capsys):
    base = setting / "base"
    own = tmp_path / "own"
    assert main(["iar", "train", *TRAIN, "--seed", "2", "--out", str(own)]) == 0
    capsys.readouterr()
    before = sorted(p.name for p in base.iterdir())
    _one_line(capsys, main(["iar", "mitigations", str(base), "--method", f"own={own}", "--tag", "x"]),
              "its tokenizer gives other tokens than the base run's")
    _one_line(capsys, main(["iar", "mitigations", str(base), "--method", "nameless"]), "--method must be NAME=RUN")
    _one_line(capsys, main(["iar", "mitigations", str(base), "--method", f"a={tmp_path / 'none'}"]),
              "is not a finished IAR run")
    _one_line(capsys, main(["iar", "mitigations", str(base), "--method", f"a={own}", "--method", f"a={own}"]),
              "given twice")
    _one_line(capsys, main(["iar", "mitigations", str(own), "--method", f"c={setting / 'copy'}"]),
              "not a finished yardstick")
    assert sorted(p.name for p in base.iterdir()) == before
    assert not (own / "mitigations").exists()
