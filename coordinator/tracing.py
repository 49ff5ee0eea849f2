"""Trace ids for calls: from a W3C `traceparent` (HTTP header or request `_meta`), else freshly minted."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import Any, Final

TRACEPARENT: Final = "traceparent"
"""The W3C Trace Context header, and the `_meta` key that carries it over stdio and in request envelopes."""

_TRACEPARENT_RE: Final = re.compile(r"^[0-9a-f]{2}-(?P<trace>[0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
_INVALID_TRACE: Final = "0" * 32


def new_trace_id() -> str:
    """A random 128-bit trace id as 32 lowercase hex digits, the W3C format.

    Trace ids correlate logs; they are not secrets, so the fast non-cryptographic generator is
    enough (W3C Trace Context asks for randomness, not unpredictability).
    """
    value = random.getrandbits(128)
    return f"{value or 1:032x}"


def parse_traceparent(value: object) -> str | None:
    """The trace id inside a `traceparent` value, or None when the value is absent or malformed.

    The all-zero trace id is invalid per W3C Trace Context and reads as absent.
    """
    if not isinstance(value, str):
        return None
    match = _TRACEPARENT_RE.match(value.strip().lower())
    if match is None or match.group("trace") == _INVALID_TRACE:
        return None
    return match.group("trace")


def trace_id_for(headers: Mapping[str, str] | None, meta: Mapping[str, Any] | None) -> str:
    """The trace id for one request: the request `_meta` wins over the HTTP header; else a new one."""
    if meta is not None and (found := parse_traceparent(meta.get(TRACEPARENT))) is not None:
        return found
    if headers is not None and (found := parse_traceparent(headers.get(TRACEPARENT))) is not None:
        return found
    return new_trace_id()


def trace_from_headers(headers: Mapping[str, str]) -> str:
    """The trace id of a valid `traceparent` header, else a new random one."""
    return trace_id_for(headers, None)


def make_traceparent(trace_id: str) -> str:
    """A W3C `traceparent` continuing `trace_id` with a fresh span id, sampled (flags 01)."""
    span = random.getrandbits(64) or 1
    return f"00-{trace_id}-{span:016x}-01"
