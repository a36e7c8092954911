"""Agent configs (frozen dataclasses) as command-line flags and JSON.

Each agent declares its hyper-parameters once, in its config dataclass; `rlstore train <agent>`
derives its flags from the fields, so a new agent gets a complete CLI without CLI code.
Flags default to None so a resumed run can tell what the user set explicitly.
"""
from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any, Mapping


def add_config_arguments(parser: argparse.ArgumentParser, config_class: type) -> None:
    """Adds `--field-name` for every field of `config_class`."""
    hints = typing.get_type_hints(config_class)
    group = parser.add_argument_group(f"{config_class.__name__} options")
    for field in dataclasses.fields(config_class):
        parse = _parser_for(hints[field.name])
        default = field.default
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        group.add_argument(f"--{field.name.replace('_', '-')}", dest=f"config_{field.name}", type=parse,
                           default=None, choices=field.metadata.get("choices"), metavar=_metavar(field),
                           help=f"{field.metadata.get('help', field.name)} (default: {shown})")


def given_overrides(args: argparse.Namespace, config_class: type) -> dict[str, Any]:
    """The config fields the user set on the command line."""
    values = {f.name: getattr(args, f"config_{f.name}", None) for f in dataclasses.fields(config_class)}
    return {name: value for name, value in values.items() if value is not None}


def config_from_json(config_class: type, data: Mapping[str, Any]) -> Any:
    """Rebuilds a config from `dataclasses.asdict` output (JSON lists become tuples)."""
    hints = typing.get_type_hints(config_class)
    known = {f.name for f in dataclasses.fields(config_class)}
    return config_class(**{k: tuple(v) if _is_tuple(hints[k]) else v for k, v in data.items() if k in known})


def _metavar(field: dataclasses.Field) -> str | None:
    if "choices" in field.metadata:
        return None  # argparse lists the choices
    if isinstance(field.default, bool):
        return "true|false"
    return "N,N" if isinstance(field.default, tuple) else field.name.split("_")[-1].upper()


def _is_tuple(hint: Any) -> bool:
    return typing.get_origin(hint) is tuple


def _parser_for(hint: Any):
    if _is_tuple(hint):
        item = typing.get_args(hint)[0]
        return lambda text: tuple(item(part) for part in text.split(",") if part.strip())
    if hint is bool:
        return lambda text: text.lower() in ("1", "true", "yes")
    return hint
