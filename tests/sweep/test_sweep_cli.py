"""`memlab sweep` / `memlab phase` commands: template, bad input (exit 2, one line, nothing written),
summary JSON equal to the analysis, plots written as PNG."""

import json
import sys
import tomllib

import pytest

from memlab.cli import main
from memlab.sweep.phase import summarize_dir
from memlab.sweep.runner import run_sweep
from memlab.sweep.spec import parse_spec
from sweep_standin import STANDINS


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sw") / "sweep"
    spec = parse_spec({"name": "cli", "data": {"dim": 3, "components": 2, "n_train": [40, 80]},
                       "model": {"sizes": [0.1, 0.3, 0.5, 0.7, 1.0]}, "seeds": {"count": 3}})
    run_sweep(spec, out, workers=1, progress=False, **STANDINS)
    return out


def test_template_is_printed_and_valid(capsys):
    assert main(["sweep", "template"]) == 0
    parse_spec(tomllib.loads(capsys.readouterr().out))


@pytest.mark.parametrize("spec_text, argv_extra, message", [
    ('name = "x"\n[data]\ndim = 3\n[model]\nsizes = [0.5]\nkind = "cnn"\n', [], "unknown model.kind 'cnn'"),
    ('name = "x"\n[data]\ndim = 3\n[model]\nsizes = [0.5]\n[train]\nsteps = -1\n', [], "steps must be an integer >= 0"),
    ('name = "x"\n[data]\ndim = 3\n[model]\nsizes = [0.5]\n[train]\nfoo = 1\n', [], "unknown key 'foo' in sweep spec [train]"),
    ('name = "x"\n[data]\ndim = 3\n[model]\nsizes = [0.5]\n', ["--workers", "0"], "--workers must be an integer >= 1"),
    ('name = "x"\n[data]\ndim = 3\n[model]\nsizes = [0.5]\n', ["--backend", "dask"], "unknown --backend 'dask'"),
])
def test_bad_sweep_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, spec_text, argv_extra, message):
    spec = tmp_path / "s.toml"
    spec.write_text(spec_text)
    out = tmp_path / "out"
    assert main(["sweep", "run", str(spec), "--out", str(out), *argv_extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_ray_backend_without_ray_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    spec = tmp_path / "s.toml"
    spec.write_text('name = "x"\n[data]\ndim = 3\n[model]\nsizes = [0.5]\n')
    assert main(["sweep", "run", str(spec), "--out", str(tmp_path / "o"), "--backend", "ray"]) == 2
    assert "pip install -e '.[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_phase_summary_json_matches_the_analysis(sweep_dir, capsys):
    assert main(["phase", "summary", str(sweep_dir), "--json", "--boot", "300"]) == 0
    cap = capsys.readouterr()
    got = json.loads(cap.out)
    _, _, expected = summarize_dir(sweep_dir, n_boot=300)
    assert got["rows"] == 2 * 5 * 3 and len(got["configurations"]) == 2
    for g, e in zip(got["configurations"], expected):
        assert g["observed"]["m_over_n"] == pytest.approx(e["observed"]["m_over_n"])
        assert g["observed"]["interval"] == pytest.approx(e["observed"]["interval"])
        assert g["predicted"]["m_over_n"] == pytest.approx(0.45)
    assert "observed transition" in cap.err  # the human table goes to stderr


def test_phase_plot_writes_pngs_and_rejects_bad_input(sweep_dir, tmp_path, capsys):
    png = tmp_path / "fig" / "phase.png"
    assert main(["phase", "plot", str(sweep_dir), "--out", str(png), "--panels", "--boot", "100"]) == 0
    for p in [png] + [png.parent / f"phase_{n}.png" for n in ("ratio", "losses", "phase", "agreement")]:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    assert main(["phase", "plot", str(sweep_dir), "--out", str(tmp_path / "x.pdf")]) == 2
    assert main(["phase", "plot", str(tmp_path), "--out", str(tmp_path / "y.png")]) == 2
    assert main(["phase", "summary", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert "--out must be a .png file" in err and "not a `memlab sweep run` sweep" in err
    assert not (tmp_path / "x.pdf").exists() and not (tmp_path / "y.png").exists()


def test_summary_with_another_weighting_is_computed_once_and_cached(sweep_dir, capsys, monkeypatch):
    from memlab.sweep import cells

    calls = []

    def counting_predict(data_cfg, fields):
        calls.append(fields["weighting"])
        return {"m_star_over_n": 0.2, "interval": [0.1, 0.3], "per_t": [], "curve": []}

    monkeypatch.setattr(cells, "predict_data", counting_predict)
    for _ in range(2):
        assert main(["phase", "summary", str(sweep_dir), "--json", "--boot", "50", "--weighting", "x0-uniform"]) == 0
        got = json.loads(capsys.readouterr().out)
        assert [c["predicted"]["m_over_n"] for c in got["configurations"]] == [0.2, 0.2]
        assert all(c["prediction_in_interval"] is False for c in got["configurations"])  # observed is ~0.45
    assert calls == ["x0-uniform", "x0-uniform"]  # one per data configuration, then read from the cache
    assert main(["phase", "summary", str(sweep_dir), "--weighting", "snr"]) == 2
    assert "unknown --weighting 'snr'; allowed: " in capsys.readouterr().err
