"""Sans-IO SIP user agent client: messages, digest auth, timers and the call state machine.

Bytes and timer ticks go in, messages to send and call records come out;
no module here touches a socket or a clock.  `probes.phone.caller` is the
asyncio shell that drives it.
"""
