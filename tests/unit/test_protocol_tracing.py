"""Trace ids: W3C traceparent parsing and the precedence of `_meta` over the HTTP header."""

from __future__ import annotations

from coordinator.tracing import (
    make_traceparent,
    new_trace_id,
    parse_traceparent,
    trace_from_headers,
    trace_id_for,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


def test_a_valid_traceparent_yields_its_trace_id() -> None:
    """The 32-hex trace id is taken from a well-formed traceparent."""
    assert parse_traceparent(PARENT) == TRACE


def test_malformed_or_all_zero_traceparents_are_ignored() -> None:
    """Garbage, non-strings and the invalid all-zero id read as absent."""
    assert parse_traceparent("nonsense") is None
    assert parse_traceparent(42) is None
    assert parse_traceparent(f"00-{'0' * 32}-00f067aa0ba902b7-01") is None


def test_meta_wins_over_the_header_and_a_new_id_is_minted_otherwise() -> None:
    """Request `_meta` beats the HTTP header; with neither, a fresh 32-hex id appears."""
    other = f"00-{'1' * 32}-00f067aa0ba902b7-01"
    assert trace_id_for({"traceparent": other}, {"traceparent": PARENT}) == TRACE
    assert trace_id_for({"traceparent": other}, None) == "1" * 32
    minted = trace_id_for(None, None)
    assert len(minted) == 32
    assert minted != new_trace_id()


def test_make_traceparent_round_trips_through_the_parser() -> None:
    """A traceparent made for a trace id parses back to it, with a fresh span id each time."""
    made = make_traceparent(TRACE)
    assert parse_traceparent(made) == TRACE
    assert made != make_traceparent(TRACE)
    assert trace_from_headers({"traceparent": made}) == TRACE
