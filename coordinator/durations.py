"""Go-style duration strings (`500ms`, `30s`, `1h30m`) parsed to float seconds, and formatted back."""

from __future__ import annotations

import re

_UNITS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_WHOLE = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?(?:ns|us|µs|ms|s|m|h))+$")

EXAMPLES = "examples: 30m, 1h30m"


class DurationError(ValueError):
    """A string that is not a Go-style duration; the message says what is allowed."""


def parse_duration(text: str) -> float:
    """Parse a Go-style duration such as `1h30m` or `500ms` into float seconds.

    Like Go's `time.ParseDuration` without signs: a sequence of decimal numbers, each with a unit
    (ns, us, µs, ms, s, m, h). A bare `0` is accepted too, as in Go.
    """
    if not isinstance(text, str):
        raise DurationError(f"{text!r} is not a duration ({EXAMPLES})")
    stripped = text.strip()
    if stripped == "0":
        return 0.0
    if not _WHOLE.match(stripped):
        raise DurationError(f"{text!r} is not a duration ({EXAMPLES})")
    return sum(float(number) * _UNITS[unit] for number, unit in _PART.findall(stripped))


def format_duration(seconds: float) -> str:
    """Render float seconds as a short Go-style duration (`90` -> `1m30s`, `0.5` -> `500ms`)."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        millis = seconds * 1000
        return f"{millis:g}ms"
    whole = int(seconds)
    frac = seconds - whole
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    out = ""
    if hours:
        out += f"{hours}h"
    if minutes:
        out += f"{minutes}m"
    if secs or frac or not out:
        out += f"{secs + frac:g}s"
    return out
