"""Sub-commands of `memlab`. Each module defines `register(subparsers)`; heavy imports stay inside `run`."""
