"""Recompute the predicted crossover intervals stored under docs/results with memlab's current bootstrap
(over permutations only; memlab.crossover.predict._bootstrap). Point predictions do not change; intervals
and the `intervals_overlap` flag of the phase summaries do.

    .venv/bin/python docs/results/repredict.py [NAME ...]   (default: every docs/results/*/summary*.json)
    .venv/bin/python docs/results/repredict.py --sweep DIR ...   (a sweep directory's cached predictions)

For each docs/results/NAME/summary.json (and summary_eps.json, the eps-weighted prediction) the data
configurations are rebuilt from NAME/spec.toml exactly as `memlab sweep run` builds them (plan, resolve_predict),
each prediction is recomputed, and the summary's `predicted` record and `intervals_overlap` are rewritten; the
observed side is left as it was. docs/results/crossover_families/*.json (whole `memlab crossover predict`
outputs) are recomputed from the config they hold, and so are the predictions the docs quote without a
stored summary (extra_predictions). Prints old and new intervals; writes docs/results/predicted_intervals.csv
with both."""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

import pandas as pd

from memlab.config import DataConfig
from memlab.crossover.predict import CrossoverConfig, predict
from memlab.io import write_json
from memlab.options import from_dict
from memlab.sweep.cells import resolve_predict
from memlab.sweep.runner import plan
from memlab.sweep.spec import data_key, parse_spec

D = Path(__file__).resolve().parent


def predictions_of(spec_path: Path, weighting: str | None) -> dict[str, dict]:
    """{data key: the prediction} of every data configuration of a sweep spec (weighting overrides [predict]'s)."""
    spec = parse_spec(tomllib.loads(spec_path.read_text()))
    out = {}
    for cell in plan(spec):
        key = data_key(cell.data)
        if key in out:
            continue
        fields = resolve_predict(dict(spec.predict, **({"weighting": weighting} if weighting else {})), cell.train,
                                 cell.data)
        out[key] = predict(cell.data, from_dict(CrossoverConfig, fields, "[predict]"))
    return out


def overlap(obs: dict, p_int: list) -> bool | None:
    o_lo, o_hi = obs.get("interval", [None, None])
    if None in p_int or (o_lo is None and o_hi is None):
        return None
    return bool((o_lo is None or p_int[1] >= o_lo) and (o_hi is None or p_int[0] <= o_hi))


def extra_predictions() -> list[dict]:
    """Predictions quoted in the docs whose sweeps are not stored here: the GMM acceptance diagrams
    (`memlab sweep template`, N in {25, 50, 100}, summarized with --weighting x0-uniform) and the two
    defaults of `make demo`'s crossover table (GMM d=30 K=4 and templates 3x15x15, N=100; the command's
    defaults). Old intervals: as the docs quoted them."""
    from memlab.sweep.template import TEMPLATE

    tmp = D / ".gmm_template_spec.toml"
    out = []
    try:
        tmp.write_text(TEMPLATE.replace("n_train = 100 ", "n_train = [25, 50, 100] ", 1))
        old = {25: [0.729, 0.879], 50: [0.736, 0.841], 100: [0.744, 0.824]}
        for pred in predictions_of(tmp, "x0-uniform").values():
            out.append({"file": "docs/phase_diagrams.md: GMM d=30 K=4 (sweep template, x0-uniform)",
                        "n_train": pred["n_train"], "m_star_over_n": pred["m_star_over_n"],
                        "old_interval": old[pred["n_train"]], "new_interval": pred["interval"]})
    finally:
        tmp.unlink(missing_ok=True)
    for label, data, old_iv in (("README: make demo, GMM d=30 K=4", DataConfig(dim=30, components=4, n_train=100),
                                 [0.744, 0.824]),
                                ("README: make demo, templates 3x15x15 K=4",
                                 DataConfig(dataset="templates", components=4, n_train=100, height=15, width=15),
                                 [0.930, 0.983])):
        pred = predict(data, CrossoverConfig())
        out.append({"file": label, "n_train": 100, "m_star_over_n": pred["m_star_over_n"], "old_interval": old_iv,
                    "new_interval": pred["interval"]})
    return out


def main(names: list[str]) -> None:
    log = []
    files = sorted(p for n in (names or [p.name for p in D.iterdir() if p.is_dir()])
                   for p in (D / n).glob("summary*.json"))
    for path in files:
        weighting = "eps" if path.stem == "summary_eps" else None
        summary = json.loads(path.read_text())
        preds = predictions_of(path.parent / "spec.toml", weighting)
        for rec in summary["configurations"]:
            pred = preds[rec["data_key"]]
            old = rec["predicted"]
            assert abs(pred["m_star_over_n"] - old["m_over_n"]) < 1e-9, f"{path}: the point prediction moved"
            log.append({"file": str(path.relative_to(D)), "n_train": rec["n_train"], "m_star_over_n": pred["m_star_over_n"],
                        "old_interval": old["interval"], "new_interval": pred["interval"]})
            rec["predicted"] = {**old, "interval": pred["interval"]}
            rec["intervals_overlap"] = overlap(rec["observed"], pred["interval"])
        path.write_text(json.dumps(summary) + "\n")  # the one-line form `memlab phase summary --json` prints
    for path in sorted((D / "crossover_families").glob("*.json")) if not names else []:
        old = json.loads(path.read_text())
        cfg = old["config"]
        new = predict(DataConfig(**cfg["data"]), from_dict(CrossoverConfig, cfg["crossover"], "crossover"))
        assert abs(new["m_star_over_n"] - old["m_star_over_n"]) < 1e-9, f"{path}: the point prediction moved"
        log.append({"file": str(path.relative_to(D)), "n_train": old["n_train"], "m_star_over_n": new["m_star_over_n"],
                    "old_interval": old["interval"], "new_interval": new["interval"]})
        write_json(path, new)
    if not names:
        log += extra_predictions()
    table = pd.DataFrame(log)
    out = D / "predicted_intervals.csv"
    if out.is_file():  # a second run finds the new intervals stored: keep the first run's old ones
        first = pd.read_csv(out).set_index(["file", "n_train"])["old_interval"]
        keys = list(zip(table["file"], table["n_train"]))
        table["old_interval"] = [first.get(k, o) for k, o in zip(keys, table["old_interval"])]
    table.to_csv(out, index=False, float_format="%.4g")
    print(table.to_string(), file=sys.stderr)


def refresh_sweep(root: Path) -> None:
    """Recompute every cached prediction of a sweep directory (DIR/predictions/*.json) from the config it
    holds, so that `memlab phase summary|plot DIR` show the current intervals."""
    for path in sorted((root / "predictions").glob("*.json")):
        old = json.loads(path.read_text())
        if old.get("error") or "config" not in old:
            continue
        cfg = old["config"]
        new = predict(DataConfig(**cfg["data"]), from_dict(CrossoverConfig, cfg["crossover"], "crossover"))
        assert abs(new["m_star_over_n"] - old["m_star_over_n"]) < 1e-9, f"{path}: the point prediction moved"
        write_json(path, new)
        print(f"{path}: {old['interval']} -> {new['interval']}", file=sys.stderr)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--sweep"]:  # repredict.py --sweep DIR ...: refresh sweep directories' caches
        for d in sys.argv[2:]:
            refresh_sweep(Path(d))
    else:
        main(sys.argv[1:])
