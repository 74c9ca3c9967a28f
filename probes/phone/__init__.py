"""Phone probe: mystery calls placed over a SIP trunk (DESIGN §2, `phone.answer`, `phone.out_of_hours`)."""
