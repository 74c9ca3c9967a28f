"""Load a YAML config into `Config`, collecting *every* error with its path and line.

The YAML is composed into nodes (not loaded directly) so that each value keeps
the line it came from; `monitor.config.composer` refuses alias bombs,
recursive aliases and absurd nesting while composing, before any value is
built.  `${NAME}` strings are read from the environment and
`password_file:` / `token_file:` keys from files while the nodes are turned
into plain data, so those errors get lines too.  Then pydantic validates the
data and `crossrefs` checks references between sections; all problems end up
in one `ConfigError`, sorted by line, so an operator fixes them in one pass.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from monitor.config.channels import BUILT_IN, CONTEXT_KEY, ChannelSpec
from monitor.config.composer import DocumentRefused, compose
from monitor.config.crossrefs import check_references
from monitor.config.models import Config, config_model

Path_ = tuple[str | int, ...]

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
SECRET_FILE_KEYS = {"password_file": "password", "token_file": "token", "metrics_token_file": "metrics_token",
                    "url_file": "url", "caller_key_file": "caller_key"}


@dataclass(frozen=True, order=True)
class Problem:
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{where}{self.message} (line {self.line})" if self.line else f"{where}{self.message}"


class ConfigError(Exception):
    """The config cannot be used; `problems` lists every reason."""

    def __init__(self, source: str, problems: list[Problem]):
        self.source = source
        self.problems = sorted(set(problems))
        super().__init__(self.render())

    def render(self) -> str:
        count = len(self.problems)
        head = f"{self.source}: {count} error{'s' if count != 1 else ''}"
        return "\n".join([head, *(f"  {p}" for p in self.problems)])


def format_path(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", part):
            out += f".{part}" if out else part
        else:
            out += f'["{part}"]'
    return out


# --------------------------------------------------------------------------
# YAML nodes -> plain data + line index


class _Builder:
    """Turns composed YAML nodes into dicts/lists/scalars, remembering lines."""

    def __init__(self, base_dir: Path, environ: Mapping[str, str]):
        self.base_dir = base_dir
        self.environ = environ
        self.lines: dict[Path_, int] = {}
        self.problems: list[Problem] = []
        self.failed: set[str] = set()  # paths whose value was dropped; pydantic's complaint about them is noise
        self._scalars = yaml.SafeLoader("")  # reuses SafeLoader's scalar typing (ints, bools, dates)

    def problem(self, path: Path_, message: str, *, dropped: Path_ | None = None) -> None:
        self.problems.append(Problem(self.lines.get(path, 0), format_path(path), message))
        self.failed.add(format_path(path if dropped is None else dropped))

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
        value = self._scalars.construct_object(node)
        if isinstance(value, str) and "$" in value:
            value = self._substitute(value, path)
        return value

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        result: dict[str, Any] = {}
        keys = [str(k.value) for k, _ in node.value]
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = (*path, key)
            self.lines[child] = key_node.start_mark.line + 1
            if key in result or (key in SECRET_FILE_KEYS and SECRET_FILE_KEYS[key] in keys):
                message = "given twice" if key in result else f"give {SECRET_FILE_KEYS[key]} or {key}, not both"
                self.problem(child, message)
                continue
            if key in SECRET_FILE_KEYS:
                target = SECRET_FILE_KEYS[key]
                self.lines[(*path, target)] = self.lines[child]
                result[target] = self._read_secret_file(self.build(value_node, child), child, (*path, target))
                continue
            result[key] = self.build(value_node, child)
        return result

    def _substitute(self, value: str, path: Path_) -> str | None:
        missing = [name for name in ENV_REF.findall(value) if name not in self.environ]
        if missing:
            names = ", ".join(missing)
            self.problem(path, f"environment variable {names} is not set (the value refers to it)")
            return None
        return ENV_REF.sub(lambda m: self.environ[m.group(1)], value)

    def _read_secret_file(self, name: Any, path: Path_, target: Path_) -> str | None:
        if not isinstance(name, str):
            self.problem(path, "should be a file path", dropped=target)
            return None
        file = Path(name) if Path(name).is_absolute() else self.base_dir / name
        try:
            return file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            self.problem(path, f"cannot read {file}: {exc.strerror or exc}", dropped=target)
            return None


# --------------------------------------------------------------------------
# pydantic errors -> problems


def _message(error: Mapping[str, Any]) -> str:
    kind, msg = error["type"], error["msg"]
    if kind == "missing":
        return "required, but missing"
    if kind == "extra_forbidden":
        return "unknown key; check its spelling against the configuration reference"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    elif msg.startswith("Assertion failed, "):
        msg = msg[len("Assertion failed, ") :]
    return msg[:1].lower() + msg[1:]


def _problems_from(exc: ValidationError, lines: dict[Path_, int]) -> list[Problem]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        message = _message(error)
        if loc and loc[-1] == "[key]":
            loc = loc[:-1]
            message = f"bad name: {message}"
        problems.append(Problem(_line_for(loc, lines), format_path(loc), message))
    return problems


def _line_for(loc: Path_, lines: dict[Path_, int]) -> int:
    """The line of the deepest part of `loc` present in the document."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 0


# --------------------------------------------------------------------------
# entry points


def parse_config(text: str, *, source: str = "<config>", base_dir: Path | None = None,
                 environ: Mapping[str, str] | None = None,
                 channels: Mapping[str, ChannelSpec] | None = None) -> Config:
    """Parse YAML text; raise `ConfigError` listing every problem.

    `channels`: the probe channels the service runs with (default: the built-in email and phone); a
    kind registered at the composition root brings its own, so its commitments and site sections validate.
    """
    try:
        root = compose(text)
    except DocumentRefused as exc:
        raise ConfigError(source, [Problem(exc.line, "", exc.message)]) from None
    except yaml.YAMLError as exc:
        mark, context = getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark else 0
        message = f"not valid YAML: {getattr(exc, 'problem', None) or exc}"
        if context is not None and getattr(exc, "context", None):
            message += f" ({exc.context} started on line {context.line + 1})"  # type: ignore[attr-defined]
        raise ConfigError(source, [Problem(line, "", message)]) from None
    if root is None or not isinstance(root, yaml.MappingNode):
        raise ConfigError(source, [Problem(1, "", "the file must be a YAML mapping (key: value lines)")])
    builder = _Builder(base_dir or Path.cwd(), os.environ if environ is None else environ)
    data = builder.build(root, ())
    problems = list(builder.problems)
    config = None
    try:
        channels = BUILT_IN if channels is None else channels
        config = config_model(channels).model_validate(data, context={CONTEXT_KEY: channels})
    except ValidationError as exc:
        problems += _problems_from(exc, builder.lines)
    problems += [Problem(_line_for(p, builder.lines), format_path(p), m) for p, m in check_references(data)]
    if problems:
        raise ConfigError(source, [p for p in problems if p.path not in builder.failed or p in builder.problems])
    assert config is not None
    return config


def load_config(path: str | Path, *, environ: Mapping[str, str] | None = None,
                channels: Mapping[str, ChannelSpec] | None = None) -> Config:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(file), [Problem(0, "", f"cannot read the file: {exc.strerror or exc}")]) from None
    return parse_config(text, source=str(file), base_dir=file.parent, environ=environ, channels=channels)
