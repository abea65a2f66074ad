"""Command-line options derived from the config dataclasses, so that a default, its unit and its allowed
values are stated once, on the field (`option(...)`), and every command reads configs the same way:

    defaults  <-  --config FILE.toml (one table per section)  <-  flags given on the command line

or, for `--resume --out DIR`, the config saved in DIR, with any flag given again checked against it.
Library code raises `FieldError` naming the field (`lr`); `resolve` renames it to the flag (`--lr`) or to
the TOML key it came from. No framework imports here (`memlab --help` stays light)."""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any, Callable

from memlab.errors import FieldError, UsageError


def option(default=MISSING, help: str = "", *, unit: str | None = None, flag: str | None = None,
           choices=None, parse: Callable[[str], Any] | None = None, shown: str | None = None,
           metavar: str | None = None, cli: bool = True, default_factory=MISSING, const=MISSING):
    """A dataclass field with what the command line needs: help text, unit, flag name (default
    `--field-name`), choices, a parser for types argparse cannot read, and how the default is shown.
    const: the flag's value may be left out (`--flag` alone means `const`, `--flag X` means X)."""
    meta = {"help": help, "unit": unit, "flag": flag, "choices": choices, "parse": parse, "shown": shown,
            "metavar": metavar, "cli": cli, "const": const}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


# --- parsers for the types argparse has no converter for -----------------------------------------------

def comma_list(convert: Callable[[str], Any], what: str) -> Callable[[str], tuple]:
    def parse(text: str) -> tuple:
        try:
            return tuple(convert(v.strip()) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {what}, got {text!r}") from None
    parse.__name__ = f"list of {what}"
    return parse


ints = comma_list(int, "integers")
floats = comma_list(float, "numbers")
names = comma_list(str, "names")


def _parser_for(hint, meta) -> tuple[Callable | None, dict]:
    """(argparse type, extra add_argument kwargs) for a field's type hint."""
    if meta["parse"] is not None:
        return meta["parse"], {}
    if hint is bool:
        return None, {"action": argparse.BooleanOptionalAction}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):  # X | None: parse X
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return _parser_for(rest[0], meta)
    if origin is tuple:
        return {int: ints, float: floats, str: names}[args[0]], {}
    if hint in (int, float, str):
        return hint, {}
    raise TypeError(f"no command-line parser for {hint!r}; give option(parse=...)")


def _metavar(typ, meta) -> str:
    if meta.get("choices"):
        return "{" + ",".join(map(str, meta["choices"])) + "}"
    return {int: "N", float: "X", str: "TEXT", ints: "N,N,...", floats: "X,X,...", names: "A,B,..."}.get(typ, "VALUE")


def _show(value) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(_show(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# --- sections: one config dataclass on one command ------------------------------------------------------

@dataclass(frozen=True)
class Section:
    """Config class `cls` read from the TOML table `name` and from its fields' flags. `follow` maps a field
    to (section, field) whose value it takes (one --seed for data and training), or to (section, None) for
    a whole nested config; followed and `skip` fields get no flag."""

    name: str
    cls: type
    follow: dict = field(default_factory=dict)
    skip: tuple[str, ...] = ()
    title: str | None = None

    def fields(self):
        hints = typing.get_type_hints(self.cls)
        for f in dataclasses.fields(self.cls):
            if f.name in self.follow or f.name in self.skip or not f.metadata.get("cli", True):
                continue
            yield f, hints[f.name]

    def dest(self, name: str) -> str:
        return f"{self.name}__{name}"

    def flag(self, f) -> str:
        return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def add_section(parser: argparse.ArgumentParser, section: Section) -> None:
    """Add one flag per field of `section` (default None: 'not given'; help states the real default once)."""
    g = parser.add_argument_group(section.title or section.name)
    for f, hint in section.fields():
        meta = f.metadata
        typ, extra = _parser_for(hint, meta)
        default = f.default if f.default is not MISSING else f.default_factory()
        shown = meta.get("shown") or _show(default)
        text = meta.get("help", "")
        if meta.get("unit"):
            text += f" [{meta['unit']}]"
        text = f"{text} (default {shown})".strip()
        kwargs = dict(dest=section.dest(f.name), default=None, help=text.replace("%", "%%"), **extra)
        if meta.get("const", MISSING) is not MISSING:
            kwargs.update(nargs="?", const=meta["const"])
        if typ is not None:
            kwargs["type"] = typ
            kwargs["metavar"] = meta.get("metavar") or _metavar(typ, meta)
        g.add_argument(section.flag(f), **kwargs)


def add_config_flag(parser: argparse.ArgumentParser, sections: list[str]) -> None:
    parser.add_argument("--config", type=Path, default=None, metavar="FILE.toml",
                        help=f"TOML file with tables [{'], ['.join(sections)}] setting any option below; "
                             "flags given on the command line win")


# --- resolving ----------------------------------------------------------------------------------------

def load_config_file(args: argparse.Namespace) -> dict:
    from memlab.config import load_toml

    path = getattr(args, "config", None)
    return load_toml(path) if path is not None else {}


def resolve(args: argparse.Namespace, sections: list[Section], *, toml: dict | None = None,
            saved: dict | None = None, saved_where: str = "config.json") -> dict[str, Any]:
    """Build every section's config: defaults <- toml tables <- given flags; or, with `saved` (a resumed
    run's config.json), the saved values, refusing flags (or TOML values) that differ from them."""
    toml = toml or {}
    config_path = getattr(args, "config", None)
    tables = sorted(set(toml) - {sec.name for sec in sections})
    if tables:
        raise UsageError(f"unknown table [{tables[0]}] in {config_path}; allowed: "
                         f"{', '.join(f'[{sec.name}]' for sec in sections)}")
    built: dict[str, Any] = {}
    differ: list[str] = []
    for sec in sections:
        table = toml.get(sec.name, {})
        if not isinstance(table, dict):
            raise UsageError(f"[{sec.name}] in {config_path} must be a table, got {type(table).__name__}")
        given = {f.name: (sec.flag(f), getattr(args, sec.dest(f.name))) for f, _ in sec.fields()
                 if getattr(args, sec.dest(f.name), None) is not None}
        names = {f.name for f in dataclasses.fields(sec.cls) if f.name not in sec.follow}
        unknown = sorted(set(table) - set(names))
        if unknown:
            raise UsageError(f"unknown key {unknown[0]!r} in [{sec.name}] of {config_path}; "
                             f"allowed: {', '.join(sorted(names))}")
        follow = {name: (built[o] if f is None else getattr(built[o], f)) for name, (o, f) in sec.follow.items()}
        if saved is not None:
            built[sec.name] = _resumed(sec, saved, saved_where, given, table, config_path, follow, differ)
            continue
        values = {**table, **{name: v for name, (_, v) in given.items()}, **follow}
        try:
            built[sec.name] = from_dict(sec.cls, values, where=f"[{sec.name}]")
        except FieldError as e:
            raise _renamed(e, sec, given, table, config_path) from None
    if differ:
        raise UsageError(f"--resume continues the run with its own config ({saved_where}); "
                         f"given settings differ: {'; '.join(differ)}")
    return built


def _resumed(sec: Section, saved: dict, saved_where: str, given: dict, table: dict, config_path, follow: dict,
             differ: list[str]):
    """The section as saved; a flag or TOML value given again must build the same field values (compared
    after the config normalises them: `--batch full` is the saved None)."""
    values = saved.get(sec.name, {})
    if not isinstance(values, dict):
        raise UsageError(f"malformed {saved_where}: [{sec.name}] must be an object, got {type(values).__name__}")
    values = {**values, **follow}
    run = from_dict(sec.cls, values, where=f"{saved_where} [{sec.name}]", qualify=True)
    again = {**table, **{name: v for name, (_, v) in given.items()}}
    if not again:
        return run
    try:
        asked = from_dict(sec.cls, {**values, **again}, where=f"[{sec.name}]")
    except FieldError as e:
        raise _renamed(e, sec, given, table, config_path) from None
    for name in again:
        ran, want = getattr(run, name), getattr(asked, name)
        if _norm(ran) != _norm(want):
            label = given[name][0] if name in given else f"{name} in {config_path}"
            differ.append(f"{label} (run: {_show(ran)}, given: {_show(want)})")
    return run


def _renamed(e: FieldError, sec: Section, given: dict, table: dict, config_path) -> UsageError:
    base, rest = e.field.partition(" ")[0], e.field[len(e.field.partition(" ")[0]):]  # "seeds (each)"
    if base in given:
        return e.renamed(given[base][0] + rest)
    if base in table:
        return e.renamed(f"{e.field} in [{sec.name}] of {config_path}")
    flags = {f.name: sec.flag(f) for f, _ in sec.fields()}
    return e.renamed(flags.get(base, base) + rest)


def _norm(v):
    """Compare as the JSON round trip does (tuples are lists; nan equals nan)."""
    if isinstance(v, (tuple, list)):
        return [_norm(x) for x in v]
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return v


def from_dict(cls, values: dict[str, Any], where: str = "config", *, qualify: bool = False):
    """Build dataclass `cls` from a mapping (lists become tuples where the field is a tuple, nested dicts
    nested configs), naming unknown keys and their allowed values. qualify: a bad field is named with
    `where` ("sweep spec [train]: lr must be ...") for tables that no flag stands for (sweep specs, saved configs)."""
    if not isinstance(values, dict):
        raise UsageError(f"{where} must be a table of {cls.__name__} fields, got {type(values).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise UsageError(f"unknown key {unknown[0]!r} in {where}; allowed: {', '.join(sorted(names))}")
    hints = typing.get_type_hints(cls)
    vals = {k: _coerce(hints[k], v, f"{where} {k}") for k, v in values.items()}
    try:
        return cls(**vals)
    except TypeError as e:
        raise UsageError(f"invalid {where}: {e}") from None
    except FieldError as e:
        if qualify:
            raise UsageError(f"{where}: {e}") from None
        raise


def _coerce(hint, value, where: str):
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return from_dict(hint, value, where)
    origin = typing.get_origin(hint)
    if isinstance(value, list) and (origin is tuple or any(typing.get_origin(a) is tuple
                                                           for a in typing.get_args(hint))):
        return tuple(value)
    return value
