"""Tests of the phone probe: the sans-IO SIP core directly, the caller against sipp."""
