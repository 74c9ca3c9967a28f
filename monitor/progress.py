"""A progress bar for long CLI work (imports, exports), on stderr and only on a terminal.

Redirected to a file or a CI log, it stays silent: the command prints one
summary line when it is done instead of hundreds of carriage returns.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    def __init__(self, total: int | None, unit: str = "rows", stream: TextIO | None = None,
                 every_seconds: float = 0.2):
        self.total = total or None
        self.unit = unit
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.every = every_seconds
        self.started = time.monotonic()
        self.shown = 0.0
        self.drawn = False

    def update(self, position: int | None, count: int) -> None:
        """`position` against `total` (e.g. bytes read of the file size); `count` items so far."""
        now = time.monotonic()
        if not self.enabled or now - self.shown < self.every:
            return
        self.shown = now
        rate = count / max(now - self.started, 1e-9)
        if self.total and position is not None:
            share = min(1.0, position / self.total)
            bar = "#" * int(share * 30)
            text = f"\r[{bar:<30}] {share:4.0%}  {count:,} {self.unit}  {rate:,.0f} {self.unit}/s"
        else:
            text = f"\r{count:,} {self.unit}  {rate:,.0f} {self.unit}/s"
        self.stream.write(text)
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
