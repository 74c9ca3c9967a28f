"""A real Prometheus server (Debian `prometheus`) for tests: scrape qualimon, evaluate queries.

Started on a free loopback port with its own TSDB in a temp dir, a 1 s scrape
and rule-evaluation interval, and the project's alert rules loaded (so
`ALERTS` exists as it would in production).  It scrapes one target or a
fleet's (every instance under the job `qualimon`, as in production).
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.integration import free_port, need_binary

RULES = Path(__file__).resolve().parents[2] / "config" / "prometheus" / "alerts.yml"


@dataclass(frozen=True)
class QueryResult:
    ok: bool
    error: str
    series: int
    #: each series' labels (without `__name__`) and value; a scalar has no labels
    samples: tuple[tuple[dict[str, str], float], ...] = ()


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]

    def get(self, path: str, **params: str) -> dict[str, Any]:
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:  # 400/422 carry the error as JSON
            return json.load(exc)

    def query(self, expr: str, at: float | None = None) -> QueryResult:
        """`expr` evaluated now, or at the Unix time `at`."""
        body = self.get("/api/v1/query", query=expr, **({"time": repr(at)} if at is not None else {}))
        if body.get("status") != "success":
            return QueryResult(False, f"{body.get('errorType')}: {body.get('error')}", 0)
        result = body["data"]["result"]
        if not isinstance(result, list):  # a scalar or a string: [time, value]
            return QueryResult(True, "", 1, (({}, float(result[1])),))
        samples = tuple(({k: v for k, v in r["metric"].items() if k != "__name__"}, float(r["value"][1]))
                        for r in result)
        return QueryResult(True, "", len(result), samples)

    def wait_for(self, expr: str, timeout: float = 30.0) -> None:
        """Until `expr` returns at least one series (bounded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.query(expr).series:
                return
            time.sleep(0.5)
        raise TimeoutError(f"Prometheus never returned a series for {expr!r}")


@contextmanager
def prometheus(targets: str | Sequence[str], workdir: Path) -> Iterator[Prometheus]:
    """A server scraping `targets` (host:port, one or a fleet's) as the job `qualimon`."""
    binary = need_binary("prometheus", "prometheus")
    config = workdir / "prometheus.yml"
    listed = ", ".join(f"'{target}'" for target in ([targets] if isinstance(targets, str) else targets))
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{RULES}']\n"
        "scrape_configs:\n"
        f"  - {{job_name: qualimon, static_configs: [{{targets: [{listed}]}}]}}\n"
    )
    port = free_port()
    process = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = Prometheus(f"http://127.0.0.1:{port}", process)
    try:
        _until_ready(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def _until_ready(server: Prometheus, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"prometheus exited with {server.process.returncode}")
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError("prometheus did not become ready")
