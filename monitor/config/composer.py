"""Compose YAML into nodes with line marks, refusing documents that would expand beyond reason.

YAML aliases repeat a value without copying it: ten lines of anchors, each
listing the previous one ten times ("billion laughs"), expand to a billion
values once turned into data.  A recursive alias (`a: &x [*x]`) expands
forever.  The loader turns nodes into plain data by walking them, so both
must be stopped here, while composing, where each alias is seen once with
its name and line:

- the document's *expanded* size (every alias counted as the values it
  repeats) may not pass `MAX_VALUES` — a 10,000-site config is ~250,000;
- an alias may not refer to a value that is still open (that contains it);
- values may not nest deeper than `MAX_DEPTH` (a config needs a handful;
  the walk that follows recurses once per level).

A refusal raises `DocumentRefused(message, line)`.  libyaml's parser is used
when present (the events come from C; composing them here costs ~10% of a
large config's load and is what lets aliases be counted); PyYAML's pure
parser otherwise.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import Composer
from yaml.events import AliasEvent
from yaml.resolver import Resolver

MAX_VALUES = 1_000_000
MAX_DEPTH = 100


class DocumentRefused(Exception):
    def __init__(self, message: str, line: int):
        super().__init__(message)
        self.message = message
        self.line = line


try:
    from yaml.cyaml import CParser as _Parser
except ImportError:  # PyYAML built without libyaml
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Parser(Reader, Scanner, Parser):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)


class BoundedComposer(Composer, _Parser, Resolver):  # type: ignore[misc]
    """PyYAML's composer over the fastest parser available, counting what every node would expand to."""

    def __init__(self, stream: str, max_values: int = MAX_VALUES, max_depth: int = MAX_DEPTH):
        _Parser.__init__(self, stream)
        Composer.__init__(self)
        Resolver.__init__(self)
        self.max_values = max_values
        self.max_depth = max_depth
        self.expanded = 0                    # values so far, each alias counted as what it repeats
        self._sizes: dict[str, int] = {}     # anchor -> the values its node expands to
        self._open: set[str] = set()         # anchors whose node is being composed
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        line = event.start_mark.line + 1
        if isinstance(event, AliasEvent):
            self._alias(event.anchor, line)
            return super().compose_node(parent, index)  # an undefined alias: PyYAML's own error
        self._depth += 1
        if self._depth > self.max_depth:
            raise DocumentRefused(f"values are nested more than {self.max_depth} levels deep; a config needs a few",
                                  line)
        before = self.expanded
        self._count(1, None, line)
        anchor = event.anchor
        if anchor is not None:
            self._open.add(anchor)
        node = super().compose_node(parent, index)
        if anchor is not None:
            self._open.discard(anchor)
            self._sizes[anchor] = self.expanded - before
        self._depth -= 1
        return node

    def _alias(self, anchor: str, line: int) -> None:
        if anchor in self._open:
            raise DocumentRefused(f"alias *{anchor} refers to a value that contains it; an alias can only repeat "
                                  "a value defined before it", line)
        self._count(self._sizes.get(anchor, 0), anchor, line)

    def _count(self, values: int, alias: str | None, line: int) -> None:
        self.expanded += values
        if self.expanded > self.max_values:
            what = f"alias *{alias}" if alias else "this value"
            raise DocumentRefused(f"{what} makes the document larger than {self.max_values:,} values (an alias "
                                  "bomb?); write the values out or use fewer aliases", line)


def compose(text: str) -> yaml.Node | None:
    """The document's root node (None when empty); `yaml.YAMLError` or `DocumentRefused` when it cannot be used."""
    return yaml.compose(text, Loader=BoundedComposer)
