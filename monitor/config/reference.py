"""The configuration reference (docs/config-reference.md), generated from the models so it cannot drift.

    python -m monitor.config.reference > docs/config-reference.md

A test regenerates it and compares, so a new or changed setting without an
updated reference fails the suite.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from typing import Any, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from monitor.config.models import Config

HEADER = """# Configuration reference

Generated from `monitor/config/models.py` by `python -m monitor.config.reference`; do not edit by hand.
Every key not listed here is an error. Secrets (marked *secret*) are never written in the file: give
`"${NAME}"` to read an environment variable, or the same key with `_file` (`password_file:`) to read a
file. `<name>` stands for a name you choose (a lower-case slug).

| key | type | default | meaning |
|---|---|---|---|
"""


def render() -> str:
    return HEADER + "".join(f"| `{key}` | {kind} | {default} | {meaning} |\n"
                            for key, kind, default, meaning in rows(Config, ""))


def rows(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, str, str, str]]:
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        annotation = field.annotation
        nested, container = _nested_model(annotation)
        yield key, _type_name(annotation), _default(field), _meaning(field)
        if nested is not None:
            yield from rows(nested, f"{key}{container}.")


def _nested_model(annotation: Any) -> tuple[type[BaseModel] | None, str]:
    """The model a field holds (directly, in a dict by name, in a list), and how its keys are written."""
    for candidate in _members(annotation):
        origin = get_origin(candidate)
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate, ""
        if origin is dict:
            value = get_args(candidate)[1]
            if isinstance(value, type) and issubclass(value, BaseModel):
                return value, ".<name>"
        if origin in (tuple, list):
            item = get_args(candidate)[0]
            if isinstance(item, type) and issubclass(item, BaseModel):
                return item, "[]"
    return None, ""


def _members(annotation: Any) -> list[Any]:
    if get_origin(annotation) in (typing.Union, types.UnionType):
        return [a for a in get_args(annotation) if a is not type(None)]
    return [annotation]


def _type_name(annotation: Any) -> str:
    parts = [_one_type(a) for a in _members(annotation)]
    optional = type(None) in get_args(annotation)
    return " or ".join(parts) + (" (optional)" if optional else "")


def _one_type(annotation: Any) -> str:
    origin = get_origin(annotation)
    if annotation is SecretStr:
        return "text, *secret*"
    if origin is typing.Annotated:
        return _one_type(get_args(annotation)[0])
    if origin is typing.Literal:
        return " \\| ".join(f"`{v}`" for v in get_args(annotation))
    if origin is dict:
        return "mapping"
    if origin in (tuple, list):
        return f"list of {_one_type(get_args(annotation)[0])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    if isinstance(annotation, type) and hasattr(annotation, "__members__"):  # enums
        return " \\| ".join(f"`{m.value}`" for m in annotation)  # type: ignore[attr-defined]
    return {str: "text", int: "integer", float: "number", bool: "true/false"}.get(annotation, str(annotation))


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
        return "—" if isinstance(value, BaseModel) or value in ({}, [], ()) else f"`{value}`"
    if field.default is None or field.default is PydanticUndefined:
        return "—"
    value = field.default
    if isinstance(value, tuple):
        value = "[" + ", ".join(str(v) for v in value) + "]"
    return f"`{getattr(value, 'value', value)}`"


def _meaning(field: FieldInfo) -> str:
    return (field.description or "").replace("|", "\\|").replace("\n", " ")


if __name__ == "__main__":
    print(render(), end="")
