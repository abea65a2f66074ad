"""Score a MemSinks run of the 8x8 acceptance on its base run's yardstick numbers (docs/iar_mitigations.md,
"MemSinks"), sinks off (the deployed model) and sinks on (diagnosis):
    python docs/results/mitigations_8x8/memsinks/score.py BASE MEMSINKS_RUN OUT

With a finished yardstick in BASE this is the library call behind `memlab iar mitigations BASE --method
memsinks=MEMSINKS_RUN` (scoreboard.score_mitigations: BASE's sets T and C, threshold, prefix, sample seeds, and
its random-edit cloud for verdicts at matched cost), with one more row, the run with its sinks on (the command
loads every run as deployed). Without one (BASE's yardstick still running) the same rows come from the same
Baseline, built from the yardstick's default configs (yardstick.make_baseline + score_model; sets chosen as the
yardstick chooses them, not saved), and there are no verdicts. Nothing is written into BASE: a classifier not
stored there yet is trained into OUT/../classifier-<data seed> (the same seeded training).
Writes OUT (mitigations.csv, metrics.json last; with a yardstick also verdicts.csv, curves.csv, pareto.png)."""

import sys
from pathlib import Path

import pandas as pd

from memlab.iar.batching import tokenize_all
from memlab.iar.classifier import ensure_classifier
from memlab.iar.compare import choose_sets
from memlab.iar.config import ExtractConfig, YardstickConfig
from memlab.iar.evalsets import load as load_sets
from memlab.iar.load import load_run, load_run_data, read_run_config
from memlab.iar.mitigate.memsinks import set_sinks, sink_state
from memlab.iar.mitigate.scoreboard import check_same_tokens, compute_of, read_yardstick, score_mitigations
from memlab.iar.pipeline import fold_duplicates
from memlab.iar.yardstick import make_baseline, score_model
from memlab.io import write_text
from memlab.rundir import RunDir

base_run, sink_run, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
edits = base_run / "yardstick"
finished = (edits / "metrics.json").is_file()
ycfg, ecfg = (read_yardstick(edits)[1:3] if finished else (YardstickConfig(), ExtractConfig()))
rd, _ = RunDir.open(out, "iar-mitigations", flag="OUT", continue_same=True)
base_model = load_run(base_run)
data = fold_duplicates(*load_run_data(base_run))
tokens = tokenize_all(base_model, data.train_images, ecfg.batch_size)
off, on = load_run(sink_run), load_run(sink_run)
set_sinks(on, "on")
assert sink_state(off) == "off" and sink_state(on) == "on"
runs = {"memsinks": (sink_run, off), "memsinks-sinks-on": (sink_run, on)}
for name, (_, model) in runs.items():
    check_same_tokens(model, tokens, data.train_images, name, ecfg.batch_size)
data_cfg = read_run_config(base_run).data


def classifier():
    where = base_run if (base_run / "classifier").is_dir() else out.parent / f"classifier-{data_cfg.seed}"
    where.mkdir(parents=True, exist_ok=True)
    return ensure_classifier(where, data_cfg)[0]


if finished:
    score_mitigations(base_model, data, edits, runs, rd, classifier=classifier)
else:
    sets = load_sets(base_run) or choose_sets(base_model, data, None, ecfg, ycfg.targets, ycfg.seed)
    rd.start({"base": str(base_run.resolve()), "run": str(sink_run.resolve()), "sets": sets.to_json(),
              "note": "no yardstick of BASE yet: rows without verdicts"})
    clf = classifier()
    base = make_baseline(base_model, data, sets, ecfg, ycfg.n_samples, ycfg.pca_dim, ycfg.seed, clf)
    rows = [{**base.metrics, "method": "unedited", "condition": "unedited", "kind": "unedited"}]
    for name, (path, model) in runs.items():
        row = score_model(model, base_model, base, clf, describe={"method": name, "condition": name, "run": str(path)})
        rows.append({**row, **compute_of(path), "kind": "mitigation"})
    write_text(out / "mitigations.csv", pd.DataFrame(rows).to_csv(index=False))
    rd.finish({"sets": sets.to_json(), "baseline": base.metrics, "methods": list(runs), "verdicts": []})
