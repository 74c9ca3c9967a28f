"""The SDP offer of a mystery call (RFC 4566, RFC 3264).

We never send media: the offer only has to be one that a trunk and a PBX
accept, so it lists G.711 A-law first (the French network's codec), then
mu-law and DTMF events, on a plausible even RTP port.
"""

from __future__ import annotations


def audio_offer(address: str, rtp_port: int, session_id: int) -> bytes:
    family = "IP6" if ":" in address else "IP4"
    lines = [
        "v=0",
        f"o=qualimon {session_id} {session_id} IN {family} {address}",
        "s=qualimon",
        f"c=IN {family} {address}",
        "t=0 0",
        f"m=audio {rtp_port} RTP/AVP 8 0 101",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        "a=ptime:20",
        "a=sendrecv",
    ]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")
