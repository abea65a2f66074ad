"""The `memlab` command. Sub-commands live in `memlab.commands.*`; those modules only define arguments
at import time and import JAX or PyTorch inside their `run`, so `memlab --help` imports neither."""

from __future__ import annotations

import argparse
import importlib
import sys

from memlab import __version__
from memlab.errors import UsageError

# command name -> module in memlab.commands that provides `register(subparsers)`.
COMMANDS = {
    "crossover": "memlab.commands.crossover",
    "train": "memlab.commands.train",
    "sweep": "memlab.commands.sweep",
    "phase": "memlab.commands.phase",
    "iar": "memlab.commands.iar",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like every other bad input
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="memlab", description="A laboratory for memorization in generative image models.")
    parser.add_argument("--version", action="version", version=f"memlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, module in COMMANDS.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            continue  # a half not built yet
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 2
        code = args.func(args)
        return int(code or 0)
    except UsageError as e:
        msg = str(e).splitlines()[0] if str(e) else "invalid input"
        print(f"memlab: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("memlab: interrupted; finished work is kept (re-run with --resume where available)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
