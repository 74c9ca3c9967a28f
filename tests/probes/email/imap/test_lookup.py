"""find_by_message_id against a real Dovecot: the sender's crash recovery finds its blind copy."""

from __future__ import annotations

import time

import pytest

from probes.email.imap.lookup import find_by_message_id
from tests.support.dovecot import DovecotServer, message


@pytest.mark.integration
async def test_the_blind_copy_of_a_probe_is_found_by_its_exact_message_id(dovecot: DovecotServer) -> None:
    dovecot.append(message("decoy", message_id="<xprobe-42@probes.example.net>"))
    copy = message("our probe", message_id="<probe-42@probes.example.net>", body="x" * 40_000)
    dovecot.append(copy)

    found = await find_by_message_id(dovecot.imap_config(), "probe-42@probes.example.net")
    missing = await find_by_message_id(dovecot.imap_config(), "<probe-43@probes.example.net>")

    assert found is not None and found[1] == copy    # whole, not cut at the watcher's body prefix
    assert abs(found[0].timestamp() - time.time()) < 5
    assert missing is None

