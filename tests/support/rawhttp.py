"""Send bytes to an HTTP server exactly as written: clients normalise what a hostile peer would not."""

from __future__ import annotations

import asyncio
import logging

import pytest


async def raw_request(host: str, port: int, request: bytes) -> tuple[int, bytes]:
    """Write `request` as it is on a fresh connection; return the status code and the body."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        await writer.drain()
        answer = await reader.read()
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def get(path: str | bytes, *headers: bytes) -> bytes:
    """A GET request, one header per item (each without its CRLF), that closes the connection."""
    target = path.encode() if isinstance(path, str) else path
    lines = [b"GET " + target + b" HTTP/1.1", b"Host: 127.0.0.1", *headers, b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def post(path: str, body: bytes, *headers: bytes) -> bytes:
    lines = [f"POST {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Content-Type: application/json",
             f"Content-Length: {len(body)}".encode(), *headers, b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Records at ERROR or above, and any record carrying a traceback: what a malformed request must not cause."""
    return [f"{r.levelname} {r.name}: {r.getMessage()}" for r in caplog.records
            if r.levelno >= logging.ERROR or r.exc_info or r.exc_text]
