"""`memlab iar localize|extract|ablate`: end to end on a tiny trained run, and bad input -> exit 2."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from memlab.cli import main
from memlab.iar.unitmem import top_count, unit_scores

torch.set_num_threads(1)  # tiny ops; threads only contend on a shared CPU


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from memlab.iar.config import IARTrainConfig, ImageDataConfig, RunConfig
    from memlab.iar.train import train_run

    out = tmp_path_factory.mktemp("iar") / "run"
    cfg = RunConfig(data=ImageDataConfig(n_train=16, n_heldout=16, size=16, duplicates=3, n_duplicated=2),
                    train=IARTrainConfig(arch="next-scale", epochs=2, tokenizer_epochs=1, width=32, depth=2, heads=2,
                                         codebook_size=16, latent_channels=4, tokenizer_channels=(8, 8, 8),
                                         scales=(1, 2, 4)))
    train_run(cfg, out, progress=False, figures=False)
    return out


def _one_line_error(capsys, code, needle):
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and needle in err, err


@pytest.mark.parametrize("argv, needle", [
    (["iar", "localize", "/no/such/run"], "RUN /no/such/run does not exist"),
    (["iar", "extract", "/no/such/run"], "does not exist or is not a directory"),
    (["iar", "ablate", "/no/such/run"], "does not exist or is not a directory"),
])
def test_missing_run_exits_2(capsys, argv, needle):
    _one_line_error(capsys, main(argv), needle)


@pytest.mark.parametrize("extra, needle", [
    (["--top", "0"], "--top must be in (0, 100], got 0.0"),
    (["--top", "100.5"], "--top must be in (0, 100], got 100.5"),
    (["--controls", "random,shuffle"], "unknown --controls entry 'shuffle'; allowed: random, bottom"),
    (["--factor", "2"], "--factor must be in [0, 1], got 2.0"),
    (["--sweep", "5,x"], "argument --sweep: expected a comma-separated list of numbers"),
])
def test_bad_ablation_options_exit_2_and_write_nothing(capsys, run_dir, extra, needle):
    _one_line_error(capsys, main(["iar", "ablate", str(run_dir), *extra]), needle)
    assert not (run_dir / "ablate").exists()


def test_bad_localize_and_extract_options(capsys, run_dir):
    _one_line_error(capsys, main(["iar", "localize", str(run_dir), "--rest", "max"]), "unknown --rest 'max'; allowed: mean, median")
    _one_line_error(capsys, main(["iar", "localize", str(run_dir), "--n-aug", "0"]), "--n-aug must be an integer >= 1, got 0")
    _one_line_error(capsys, main(["iar", "extract", str(run_dir), "--prefix", "3"]),
                    "--prefix must be in [1, 2] scales for this next-scale model, got 3")
    _one_line_error(capsys, main(["iar", "extract", str(run_dir), "--fpr", "1"]), "--fpr must be in (0, 1)")
    assert not (run_dir / "localize").exists()


def test_localize_extract_ablate_end_to_end_and_resume(capsys, run_dir):
    assert main(["iar", "localize", str(run_dir), "--n-aug", "2", "--json"]) == 0
    loc = json.loads(capsys.readouterr().out)
    assert loc["arch"] == "next-scale" and loc["n_images"] == 16 and 0 <= loc["mean_score"] <= 1
    assert len(loc["per_scale_block"]["scale"]) == 3 * 2  # 3 scales x 2 blocks
    for f in ("unitmem.parquet", "per_block.csv", "per_scale_block.csv", "unitmem.png", "metrics.json"):
        assert (run_dir / "localize" / f).is_file(), f
    assert not (run_dir / "localize" / "state").exists()  # a finished pass leaves no running sums behind
    scores = np.sort(unit_scores(pd.read_parquet(run_dir / "localize" / "unitmem.parquet"))["score"].to_numpy())
    n_top = top_count(len(scores), loc["top_pct"])
    assert loc["n_units"] == len(scores) and 1 <= n_top < len(scores)
    assert loc["top_mean_score"] == pytest.approx(scores[-n_top:].mean(), rel=1e-12)

    assert main(["iar", "extract", str(run_dir), "--candidates", "4", "--json"]) == 0
    ext = json.loads(capsys.readouterr().out)
    assert ext["n_candidates"] == 4 and ext["n_duplicated"] == 2 and 0 <= ext["n_extracted"] <= 4
    assert (run_dir / "extract" / "extraction.png").is_file()

    argv = ["iar", "ablate", str(run_dir), "--top", "10", "--sweep", "10", "--n-random", "2", "--n-generate", "8",
            "--candidates", "4", "--json"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["random"]["n_draws"] == 2 and set(first["per_block"]) == {"0", "1"}
    rows = (run_dir / "ablate" / "state" / "rows.json").read_text()
    assert len(json.loads(rows)["rows"]) == 1 + (1 + 1 + 2) + 2  # baseline, top, bottom, 2 random, 2 blocks
    assert main(argv) == 0  # resumes: every condition is reused, same numbers
    assert json.loads(capsys.readouterr().out) == first
    assert (run_dir / "ablate" / "state" / "rows.json").read_text() == rows


def _listing(root):
    return sorted((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in root.rglob("*") if p.is_file())


def test_a_prefix_the_model_cannot_take_writes_nothing(capsys, run_dir, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    shutil.rmtree(run / "localize", ignore_errors=True)
    before = _listing(run)
    for cmd in ("extract", "ablate"):  # ablate would first localize into RUN/localize
        _one_line_error(capsys, main(["iar", cmd, str(run), "--prefix", "999"]), "--prefix must be in [1, 2] scales")
    assert _listing(run) == before and not (run / "localize").exists()


def test_ablation_rows_of_another_config_or_other_units_are_not_reused(capsys, run_dir, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    argv = ["iar", "ablate", str(run), "--top", "10", "--sweep", "10", "--n-random", "1", "--n-generate", "8",
            "--candidates", "4", "--no-by-block", "--json"]
    assert main([*argv, "--factor", "0.5"]) == 0
    half = json.loads(capsys.readouterr().out)
    rows_file = run / "ablate" / "state" / "rows.json"
    stale = json.loads(rows_file.read_text())
    assert main([*argv, "--factor", "0"]) == 0
    zero = json.loads(capsys.readouterr().out)
    assert zero["factor"] == 0 and zero != half
    # as if a factor-0 run had been killed before its first row: config.json says 0, rows.json holds 0.5's
    rows_file.write_text(json.dumps(stale))
    (run / "ablate" / "metrics.json").unlink()
    assert main([*argv, "--factor", "0"]) == 0
    assert json.loads(capsys.readouterr().out) == zero  # recomputed, not the stale factor-0.5 rows
    # new units (localize re-run with other settings): the rows are recomputed for them
    assert main(["iar", "localize", str(run), "--n-aug", "3", "--rest", "median"]) == 0
    capsys.readouterr()
    assert main([*argv, "--factor", "0"]) == 0
    assert json.loads(rows_file.read_text())["config"]["units"] != stale["config"]["units"]


YARD = ["--localizer", "unitmem", "--ks", "10", "--factors", "0", "--cloud-ks", "5,20", "--n-samples", "16",
        "--n-boot", "50", "--candidates", "4"]


def test_yardstick_writes_table_verdicts_and_figure_resumes_and_trains_the_classifier_once(capsys, run_dir,
                                                                                            tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    assert main(["iar", "ablate", str(run), *YARD, "--json"]) == 0
    cap = capsys.readouterr()
    first = json.loads(cap.out)
    assert "class-consistency classifier: trained" in cap.err
    out = run / "yardstick"
    for f in ("yardstick.parquet", "yardstick.csv", "verdicts.csv", "curves.csv", "pareto.png", "metrics.json"):
        assert (out / f).is_file(), f
    assert json.loads((run / "evalsets.json").read_text())["source"] == "planted duplicates"
    table = pd.read_parquet(out / "yardstick.parquet")
    assert table["method"].tolist() == ["unitmem"] + ["random"] * 10  # 1 top edit, 2 k x 5 draws
    assert (table["T_n"] == 2).all() and set(first["sets"]["target_ids"]) == set(
        json.loads((run / "evalsets.json").read_text())["target_ids"])
    verdicts = pd.read_csv(out / "verdicts.csv")
    assert set(verdicts["cost_measure"]) >= {"cost_heldout_nll", "cost_sample_nll", "cost_fd"}
    assert set(verdicts["verdict"]) <= {"better", "worse", "indistinguishable", "outside the cloud",
                                        "cost not measured", "not a cost here (falls as edits grow)"}
    # counts: the uncorrected verdict beside it; the correction only turns better/worse into indistinguishable
    assert set(verdicts["verdict"]) <= set(verdicts["verdict_uncorrected"]) | {"indistinguishable"}
    assert set(first["verdict_counts_uncorrected"]) == set(first["verdict_counts"])
    assert (verdicts["count_correction"].dropna() == 0.5).all()  # T is a count, one row per edit
    rows = (out / "state" / "rows.json").read_text()
    assert main(["iar", "ablate", str(run), *YARD, "--json"]) == 0  # resumed: every row reused
    cap = capsys.readouterr()
    assert "class-consistency classifier: loaded" in cap.err
    again = json.loads(cap.out)
    assert again["verdicts"] == first["verdicts"] and (out / "state" / "rows.json").read_text() == rows
    for bad, needle in ((["--top", "5"], "--top belongs to the equal-k ablation"),
                        (["--n-draws", "3"], "--n-draws must be an integer >= 5")):
        _one_line_error(capsys, main(["iar", "ablate", str(run), *YARD, *bad]), needle)
    _one_line_error(capsys, main(["iar", "ablate", str(run), "--ks", "5"]), "--ks is a yardstick option")


def test_the_yardstick_at_a_saved_epoch_writes_beside_the_checkpoint_and_carries_the_stage(capsys, run_dir, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    assert json.loads((run / "metrics.json").read_text())["checkpoints"] == [1]
    assert main(["iar", "ablate", str(run), *YARD, "--checkpoint", "1"]) == 0
    here = run / "checkpoints" / "epoch-0001"
    table = pd.read_parquet(here / "yardstick" / "yardstick.parquet")
    history = json.loads((run / "metrics.json").read_text())["model"][0]
    assert (table["stage"] == "epoch").all() and (table["stage_epoch"] == 1).all()
    assert table["stage_heldout_nll"].iloc[0] == pytest.approx(history["heldout_nll"])
    assert table["uniform_nll"].iloc[0] == pytest.approx(np.log(16))
    assert (here / "evalsets.json").is_file() and (here / "localize" / "metrics.json").is_file()
    assert not (run / "yardstick").exists() and (run / "classifier").is_dir()  # one classifier per image set
    capsys.readouterr()
    assert main(["iar", "ablate", str(run), *YARD, "--stage", "final", "--json"]) == 0
    assert "class-consistency classifier: loaded" in capsys.readouterr().err
    final = pd.read_parquet(run / "yardstick" / "yardstick.parquet")
    assert (final["stage"] == "final").all() and (final["stage_epoch"] == 2).all()


def test_stacked_and_one_at_a_time_yardsticks_give_the_same_table_and_share_finished_rows(capsys, run_dir, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    assert main(["iar", "ablate", str(run), *YARD, "--edits-per-pass", "1", "--tag", "one"]) == 0
    assert main(["iar", "ablate", str(run), *YARD, "--edits-per-pass", "4", "--rows-per-pass", "50", "--tag", "many"]) == 0
    one, many = (pd.read_parquet(run / f"yardstick-{t}" / "yardstick.parquet") for t in ("one", "many"))
    drop = ["eval_seconds", "seconds"]
    pd.testing.assert_frame_equal(one.drop(columns=drop), many.drop(columns=drop))
    rows = (run / "yardstick-one" / "state" / "rows.json").read_text()
    assert main(["iar", "ablate", str(run), *YARD, "--edits-per-pass", "8", "--tag", "one"]) == 0  # speed only: reused
    assert (run / "yardstick-one" / "state" / "rows.json").read_text() == rows
