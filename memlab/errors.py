"""User-facing errors: the CLI turns these into one line on stderr and exit status 2."""


class UsageError(ValueError):
    """Bad input from the user (an option, a config file, a path). The message names the problem
    and the allowed values; it is printed as is, without a traceback."""


def check_positive(name: str, value, *, allow_zero: bool = False) -> None:
    if value is None or (value < 0 if allow_zero else value <= 0):
        bound = ">= 0" if allow_zero else "> 0"
        raise UsageError(f"{name} must be {bound}, got {value}")


def check_range(name: str, value, lo, hi, *, lo_open: bool = False, hi_open: bool = False) -> None:
    below = value <= lo if lo_open else value < lo
    above = value >= hi if hi_open else value > hi
    if below or above:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        raise UsageError(f"{name} must be in {left}{lo}, {hi}{right}, got {value}")


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise UsageError(f"unknown {name} {value!r}; allowed: {', '.join(map(str, choices))}")
