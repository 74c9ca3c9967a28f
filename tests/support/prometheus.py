"""A real Prometheus server (Debian `prometheus`) for tests: scrape one target, evaluate queries.

Started on a free loopback port with its own TSDB in a temp dir, a 1 s scrape
and rule-evaluation interval, and the project's alert rules loaded (so
`ALERTS` exists as it would in production).
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
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

    def query(self, expr: str) -> QueryResult:
        body = self.get("/api/v1/query", query=expr)
        if body.get("status") != "success":
            return QueryResult(False, f"{body.get('errorType')}: {body.get('error')}", 0)
        result = body["data"]["result"]
        return QueryResult(True, "", len(result) if isinstance(result, list) else 1)

    def wait_for(self, expr: str, timeout: float = 30.0) -> None:
        """Until `expr` returns at least one series (bounded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.query(expr).series:
                return
            time.sleep(0.5)
        raise TimeoutError(f"Prometheus never returned a series for {expr!r}")


@contextmanager
def prometheus(target: str, workdir: Path) -> Iterator[Prometheus]:
    binary = need_binary("prometheus", "prometheus")
    config = workdir / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{RULES}']\n"
        "scrape_configs:\n"
        f"  - {{job_name: qualimon, static_configs: [{{targets: ['{target}']}}]}}\n"
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
