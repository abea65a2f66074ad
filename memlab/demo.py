"""`make demo`: the main job on built-in defaults. Crossover predictions for the default GMM (d=30, K=4,
N=100) and the default colored templates, then (when the sweep half is present) a small GMM phase diagram,
then the IAR half: a small raster model with planted duplicates, UnitMem, and the yardstick of its top-k
edits against random edits at matched cost. Everything lands under one output folder, named at the end;
running it again continues what is there."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from memlab.io import read_json


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m memlab.demo")
    parser.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    parser.add_argument("--skip-phase", action="store_true", help="no phase diagram")
    parser.add_argument("--skip-iar", action="store_true", help="no IAR model, localization or yardstick")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    from memlab.cli import main as memlab

    written = []
    for name, extra in (("gmm", []), ("templates", ["--data", "templates"])):
        print(f"[demo] crossover prediction on the default {name} data", file=sys.stderr)
        code = memlab(["crossover", "predict", *extra, "--out", str(out / f"crossover_{name}.json"),
                       "--plot", str(out / f"crossover_{name}.png")])
        if code:
            return code
        written += [out / f"crossover_{name}.json", out / f"crossover_{name}.png"]
    if not args.skip_phase:
        try:
            from memlab.sweep.demo import run_demo_phase
        except ImportError:
            run_demo_phase = None
        if run_demo_phase is not None:
            print("[demo] small GMM phase diagram (mixture estimator, a few sizes and seeds)", file=sys.stderr)
            written += list(run_demo_phase(out))  # writes out/phase_gmm
            written += sorted((out / "phase_gmm").glob("phase_summary_*.json"))
    if not args.skip_iar:
        code, files = _iar_demo(out / "iar_run", memlab)
        if code:
            return code
        written += files
    print(f"\n[demo] outputs are in {out}:", file=sys.stderr)
    for p in written:
        print(f"  {p}", file=sys.stderr)
    for p in (p for p in written if p.name.startswith("phase_summary_")):  # repeated last, where it is seen
        note = read_json(p).get("convergence_note")
        if note:
            print(f"[demo] {p.name}: {note}", file=sys.stderr)
    return 0


# 64 shapes, 8 of them 4 times: the raster model memorizes the duplicates within its default 60 epochs (by
# epoch 34 at its default lr 1e-3; held-out NLL 5.3 nats per token against log 256 = 5.5)
IAR_TRAIN = ["--arch", "raster", "--n-train", "64", "--n-heldout", "64", "--duplicates", "4", "--n-duplicated", "8"]


def _iar_demo(run: Path, memlab) -> tuple[int, list[Path]]:
    print("[demo] IAR: a raster model on 64 shapes with 8 planted duplicates (a few minutes)", file=sys.stderr)
    resume = ["--resume"] if (run / "config.json").is_file() else []
    for argv in (["iar", "train", *IAR_TRAIN, "--out", str(run), *resume],
                 ["iar", "localize", str(run)],
                 ["iar", "ablate", str(run), "--localizer", "unitmem"]):
        code = memlab(argv)
        if code:
            return code, []
    return 0, [run / "curves.png", run / "samples.png", run / "localize" / "unitmem.png",
               run / "yardstick" / "yardstick.csv", run / "yardstick" / "verdicts.csv",
               run / "yardstick" / "pareto.png"]


if __name__ == "__main__":
    sys.exit(main())
