"""`memlab crossover predict`: the predicted critical model size M* for a dataset and training-set size."""

from __future__ import annotations

import sys

from memlab.config import DATA_SECTION
from memlab.crossover.config import CrossoverConfig
from memlab.options import Section, add_config_flag, add_section, load_config_file, resolve

SECTIONS = [DATA_SECTION, Section("crossover", CrossoverConfig, follow={"seed": ("data", "seed")}, title="prediction")]


def register(sub) -> None:
    p = sub.add_parser("crossover", help="predict the memorization crossover M* from theory")
    csub = p.add_subparsers(dest="crossover_command", metavar="SUBCOMMAND", parser_class=type(p))
    pr = csub.add_parser("predict", help="Monte Carlo losses of the reference denoisers and the critical size M*",
                         description="Monte Carlo training losses (x0 units) of theta_mem, theta_star and "
                                     "theta_pmem(M); the critical size M* with a 95% bootstrap interval.")
    add_config_flag(pr, [s.name for s in SECTIONS])
    for section in SECTIONS:
        add_section(pr, section)
    pr.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")
    pr.add_argument("--plot", metavar="PATH", help="write a PNG of the losses and the per-t crossover")
    pr.add_argument("--out", metavar="PATH", help="also write the JSON result to this file")
    pr.set_defaults(func=run_predict)
    p.set_defaults(func=lambda a: (p.print_help(sys.stderr), 2)[1])


def run_predict(args) -> int:
    from pathlib import Path

    from memlab.rundir import check_writable
    from memlab.errors import UsageError

    cfgs = resolve(args, SECTIONS, toml=load_config_file(args))
    data, cfg = cfgs["data"], cfgs["crossover"]
    cfg.check_against(data)
    if args.plot and not args.plot.lower().endswith(".png"):
        raise UsageError(f"--plot must name a .png file, got {args.plot}")
    for opt, path in (("--plot", args.plot), ("--out", args.out)):
        if path:
            check_writable(Path(path), opt, is_dir=False)  # before the computation, not after it

    from memlab.config import load_dataset

    dataset = load_dataset(data)  # validates template files before any heavy work
    result = _predict_with_progress(data, cfg, dataset)
    from memlab import io

    if args.out:
        io.write_json(Path(args.out), result)
    if args.plot:
        from memlab.crossover.plot import plot_prediction

        plot_prediction(result, Path(args.plot))
    print_table(result, sys.stderr)
    if args.json:
        sys.stdout.write(io.to_json(result) + "\n")
    return 0


def _predict_with_progress(data, cfg, dataset) -> dict:
    from rich.progress import Progress

    from memlab.crossover.predict import predict
    from memlab.diffusion.compile_cache import enable_compilation_cache

    enable_compilation_cache()  # a later prediction of the same shapes loads its program instead of compiling

    with Progress(transient=True, console=_stderr_console()) as bar:
        task = bar.add_task("Monte Carlo losses over noise levels", total=cfg.time_points)
        return predict(data, cfg, dataset, progress=lambda done, total: bar.update(task, completed=done))


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def print_table(result: dict, stream) -> None:
    from rich.console import Console
    from rich.table import Table

    lo, hi = result["interval"]
    table = Table(title=f"crossover prediction (N={result['n_train']}, d={result['dim']}, weighting={result['weighting'] if isinstance(result['weighting'], str) else 'custom'})")
    for col in ("estimate", "M*", "M*/N", "95% interval of M*/N", "vs Monte Carlo"):
        table.add_column(col)
    table.add_row("Monte Carlo", f"{result['m_star']:.1f}", f"{result['m_star_over_n']:.3f}", f"[{lo:.3f}, {hi:.3f}]", "")
    for name, a in result["approximations"].items():
        if name.startswith("_"):
            continue
        table.add_row(name, f"{a['m_star']:.1f}", f"{a['m_star_over_n']:.3f}", "", f"{a['delta_vs_mc']:+.3f}")
    Console(file=stream).print(table)
