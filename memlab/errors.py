"""User-facing errors: the CLI turns these into one line on stderr and exit status 2.

One family of validation helpers. Each names the config field (`lr`); the command-line layer renames it to
the flag (`--lr`) through `FieldError.renamed`. Every numeric check rejects NaN and infinities unless the
field says it allows them."""

from __future__ import annotations

import math


class UsageError(ValueError):
    """Bad input from the user (an option, a config file, a path). The message names the problem
    and the allowed values; it is printed as is, without a traceback."""


class FieldError(UsageError):
    """A config field holds a bad value: the message is `lead + name + " " + problem`, where `name` is the
    dataclass field (`lr must be > 0`) or, renamed by the CLI, its flag (`--lr must be > 0`)."""

    def __init__(self, field: str, problem: str, lead: str = ""):
        self.field, self.problem, self.lead = field, problem, lead
        super().__init__(f"{lead}{field} {problem}")

    def renamed(self, name: str) -> UsageError:
        return UsageError(f"{self.lead}{name} {self.problem}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_int(name: str, value, lo: int | None = None, hi: int | None = None) -> None:
    """An integer (not a bool, not a float) in [lo, hi]."""
    if not isinstance(value, int) or isinstance(value, bool) or (lo is not None and value < lo) \
            or (hi is not None and value > hi):
        if lo is not None and hi is not None:
            rng = f"an integer in [{lo}, {hi}]"
        elif lo is not None:
            rng = f"an integer >= {lo}"
        elif hi is not None:
            rng = f"an integer <= {hi}"
        else:
            rng = "an integer"
        raise FieldError(name, f"must be {rng}, got {value!r}")


def check_float(name: str, value, lo: float = -math.inf, hi: float = math.inf, *, lo_open: bool = False,
                hi_open: bool = False, nan_ok: bool = False, inf_ok: bool = False) -> None:
    """A finite number in the interval (NaN and +-inf refused unless nan_ok / inf_ok)."""
    if not _is_number(value):
        raise FieldError(name, f"must be a number, got {value!r}")
    if math.isnan(value):
        if nan_ok:
            return
        raise FieldError(name, f"must be a number{_interval(lo, hi, lo_open, hi_open)}, got nan")
    if math.isinf(value) and not inf_ok:
        raise FieldError(name, f"must be finite{_interval(lo, hi, lo_open, hi_open)}, got {value}")
    below = value <= lo if lo_open else value < lo
    above = value >= hi if hi_open else value > hi
    if below or above:
        raise FieldError(name, f"must be{_interval(lo, hi, lo_open, hi_open)}, got {value}")


def _interval(lo, hi, lo_open, hi_open) -> str:
    if lo == -math.inf and hi == math.inf:
        return ""
    if hi == math.inf:
        return f" {'>' if lo_open else '>='} {lo:g}"
    if lo == -math.inf:
        return f" {'<' if hi_open else '<='} {hi:g}"
    return f" in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"


def check_range(name: str, value, lo, hi, *, lo_open: bool = False, hi_open: bool = False) -> None:
    """A finite number in the interval (the float form of `check_float`, kept for callers' readability)."""
    check_float(name, value, lo, hi, lo_open=lo_open, hi_open=hi_open)


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise FieldError(name, f"{value!r}; allowed: {', '.join(map(str, choices))}", lead="unknown ")


def check_tag(flag: str, tag: str) -> None:
    """A name that becomes part of a directory name (`--tag`): letters, digits, '-' or '_'; '' = none."""
    if tag and not tag.replace("-", "").replace("_", "").isalnum():
        raise UsageError(f"{flag} must be letters, digits, '-' or '_', got {tag!r}")
