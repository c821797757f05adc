"""Command-line options and `--config` TOML files, both made from a config dataclass.

`add_options(parser, cls)` gives every field of `cls` an option (`--batch-size` for
batch_size, `--x/--no-x` for a bool; a nested settings dataclass, like PrepareConfig's
tokenizer, contributes its own fields) and `--config FILE.toml`. `settings(args, cls, section)`
builds the config: its defaults, then the file's top-level keys and its [section] table, then
the options given on the command line. Options default to None in argparse, so that "not
given" is told apart from "given the default" without reading argparse's internals.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from lstmusic.common.bounded import read_text_file
from lstmusic.common.errors import UserError

TYPES = {"int": int, "float": float, "str": str, "bool": bool}
MAX_TOML_BYTES = 2**20  # a settings file is a few hundred bytes


def _options(cls) -> list[tuple[str, dataclasses.Field, type | None]]:
    """(dest, field, nested dataclass or None) of each option of `cls`, nested ones flat."""
    out = []
    for f in dataclasses.fields(cls):
        if f.metadata.get("cli") is False:
            continue
        nested = f.default_factory if dataclasses.is_dataclass(f.default_factory) else None
        if nested:
            out += [(dest, g, nested) for dest, g, _ in _options(nested)]
        else:
            out.append((f.metadata.get("flag", f.name), f, None))
    return out


def _type(f: dataclasses.Field) -> type:
    return TYPES[str(f.type).split(" | ")[0]]  # `int | None` parses as int


def add_options(parser: argparse.ArgumentParser, cls, section: str, *more) -> None:
    """An option per field of `cls` (and of the classes in `more`), and `--config`."""
    parser.add_argument("--config", metavar="FILE.toml",
                        help=f"settings from a TOML file (top-level keys or a [{section}] "
                             "table); options given here override it")
    for dest, f, _ in [o for c in (cls, *more) for o in _options(c)]:
        flag = "--" + dest.replace("_", "-")
        meta, kind = f.metadata, _type(f)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        limits = "..".join(map(_number, meta["limits"])) + "; " if "limits" in meta else ""
        text = f"{meta.get('help', '')} ({limits}default: {default})"
        if kind is bool:
            parser.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction,
                                default=None, help=text)
            continue
        extra = {k: meta[k] for k in ("nargs", "const") if k in meta}
        metavar = None if "choices" in meta else meta.get("metavar", kind.__name__.upper())
        parser.add_argument(flag, dest=dest, type=kind, default=None,
                            choices=meta.get("choices"), metavar=metavar, help=text, **extra)


def _number(x) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def settings(args: argparse.Namespace, cls, section: str, others: tuple = (), **given):
    """A `cls` from its defaults, then `--config FILE.toml`, then the options given on the
    command line, then `given` (arguments that are not options, like -o). `others`: the
    other config classes of the same command, whose keys the file may hold too."""
    values = {}
    if getattr(args, "config", None):
        values = load_toml(Path(args.config), cls, section, others)
    for dest, _, _ in _options(cls):
        value = getattr(args, dest, None)
        if value is not None:
            values[dest] = value
    return build(cls, {**values, **given})


def build(cls, values: dict):
    """A `cls` from option values by dest (nested settings gathered into their dataclass)."""
    top, nested = {}, {}
    for dest, f, inner in _options(cls):
        if dest in values:
            (nested.setdefault(inner, {}) if inner else top)[f.name] = values[dest]
    for f in dataclasses.fields(cls):
        if f.metadata.get("cli") is False and f.name in values:
            top[f.name] = values[f.name]
        inner = f.default_factory if dataclasses.is_dataclass(f.default_factory) else None
        if inner in nested:
            top[f.name] = inner(**nested[inner])
    return cls(**top)


def read_toml(path: Path, section: str) -> dict:
    """A TOML file's top-level keys merged with those of its [section] table."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    # Bounded: a FIFO or a device named as --config must not block or fill the memory.
    text = read_text_file(Path(path), MAX_TOML_BYTES)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML ({exc})") from None
    except RecursionError:
        raise UserError(f"{path}: not valid TOML (nested too deeply)") from None
    if not isinstance(data.get(section, {}), dict):
        raise UserError(f"{path}: {section} must be a [{section}] table")
    return {**{k: v for k, v in data.items() if not isinstance(v, dict)},
            **data.get(section, {})}


def load_toml(path: Path, cls, section: str, others: tuple = ()) -> dict:
    """The option values for `cls` in a TOML file, by dest (keys of `others` are passed
    over); an unknown key or a value of the wrong type is one clear line."""
    types = {dest: _type(f) for dest, f, _ in _options(cls)}
    theirs = {dest for c in others for dest, _, _ in _options(c)}
    out = {}
    for key, value in read_toml(path, section).items():
        name = key.replace("-", "_")
        if name in theirs and name not in types:
            continue
        if name not in types:
            known = ", ".join([*types, *sorted(theirs)])
            raise UserError(f"{path}: unknown setting {key!r}; known: {known}")
        want = types[name]
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise UserError(f"{path}: {key} must be {want.__name__}, not {value!r}")
        out[name] = value
    return out
