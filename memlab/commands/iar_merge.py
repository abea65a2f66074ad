"""`memlab iar merge RUN --last K | --steps a,b,... --out DIR`: average the weights of saved checkpoints of one
run into a new run (memlab.iar.mitigate.merge); `memlab iar monitor RUN`: held-out NLL against sample quality
over the saved checkpoints, marking where the NLL rises while quality holds (memlab.iar.mitigate.monitor)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from memlab.options import ints


def register(iar_sub) -> None:
    p = iar_sub.add_parser("merge", help="average the weights of a run's saved checkpoints into a new run",
                           description="Average (mean of the state dicts) the model weights of the K latest saved "
                                       "epochs of RUN (the final epoch counts as one), or of the epochs named by "
                                       "--steps, into the new run directory --out (the tokenizer is RUN's). "
                                       "Every IAR command opens the new run like a trained one.")
    p.add_argument("run", metavar="RUN", help="finished IAR run directory (from `memlab iar train --out RUN`)")
    p.add_argument("--last", type=int, default=None, metavar="K", help="merge the K latest saved epochs")
    p.add_argument("--steps", type=ints, default=None, metavar="E,E,...", help="merge these saved epochs")
    p.add_argument("--out", required=True, help="new run directory to create")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default 0: torch's choice)")
    p.add_argument("--json", action="store_true", help="print the merged run's metrics as JSON on stdout")
    p.set_defaults(func=run_merge)

    p = iar_sub.add_parser("monitor", help="held-out NLL against sample quality over a run's checkpoints",
                           description="Per saved epoch of RUN (and the final one): held-out NLL, the Frechet "
                                       "distance and class consistency of generated samples; marks the epochs "
                                       "where held-out NLL has risen over its best while quality holds. Writes "
                                       "RUN/monitor/monitor.csv and RUN/monitor/monitor.png.")
    p.add_argument("run", metavar="RUN", help="finished IAR run directory")
    p.add_argument("--n-samples", type=int, default=128, help="samples per epoch for FD and class consistency "
                                                               "(default 128)")
    p.add_argument("--nll-rise", type=float, default=0.05, help="held-out NLL over its best so far that counts as "
                                                                "risen, nats per token (default 0.05)")
    p.add_argument("--quality-tol", type=float, default=0.05,
                   help="quality holds: class consistency within TOL of its best so far and FD within a factor "
                        "1 + TOL of its best so far (default 0.05)")
    p.add_argument("--seed", type=int, default=0, help="sample seeds are seed, seed + 1, ... (default 0)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default 0: torch's choice)")
    p.add_argument("--json", action="store_true", help="print the table as JSON on stdout")
    p.set_defaults(func=run_monitor)


def run_merge(args: argparse.Namespace) -> int:
    from memlab.errors import check_int
    from memlab.io import to_json
    from memlab.rundir import RunDir

    check_int("--threads", args.threads, 0)
    RunDir.existing(args.run, "iar-train")
    RunDir.open(args.out, "iar-train")  # a new or empty directory, checked before any work
    from memlab.iar.mitigate.merge import choose_epochs

    epochs = choose_epochs(args.run, args.last, tuple(args.steps) if args.steps is not None else None)
    import torch

    from memlab.iar.mitigate.merge import merge_run

    if args.threads:
        torch.set_num_threads(args.threads)
    metrics = merge_run(args.run, epochs, args.out)
    row = metrics["final"]["model"]
    print(f"merged epochs {', '.join(map(str, epochs))} of {args.run} -> {args.out}: train acc {row['train_acc']:.3f}, "
          f"held-out NLL {row['heldout_nll']:.3f}, target acc {row['target_acc']:.3f}", file=sys.stderr)
    if args.json:
        print(to_json({"out": str(args.out), "epochs": epochs, "final": row}, indent=None))
    return 0


def run_monitor(args: argparse.Namespace) -> int:
    from memlab.errors import check_float, check_int
    from memlab.io import save_figure, to_json, write_text
    from memlab.rundir import RunDir

    check_int("--threads", args.threads, 0)
    check_int("--n-samples", args.n_samples, 2)
    check_int("--seed", args.seed, 0)
    check_float("--nll-rise", args.nll_rise, 0.0)
    check_float("--quality-tol", args.quality_tol, 0.0)
    RunDir.existing(args.run, "iar-train")
    from memlab.iar.mitigate.merge import available_epochs

    epochs = available_epochs(args.run)  # an unfinished run: one line, before anything is loaded
    import torch

    from memlab.iar.mitigate import monitor

    if args.threads:
        torch.set_num_threads(args.threads)
    table = monitor.measure(args.run, epochs, args.n_samples, args.seed)
    table = monitor.mark(table, args.nll_rise, args.quality_tol)
    out = monitor.out_dir(args.run)
    write_text(out / "monitor.csv", table.to_csv(index=False))
    save_figure(monitor.figure(table, Path(args.run).name), out / "monitor.png")
    from memlab.commands.iar_localize import print_table

    print_table(f"over-memorization monitor of {args.run}", table)
    print(f"-> {out / 'monitor.csv'}, {out / 'monitor.png'}", file=sys.stderr)
    if args.json:
        print(to_json(table.to_dict(orient="records"), indent=None))
    return 0
