"""Go-style durations: parsing to seconds, rejection with help, and formatting back."""

from __future__ import annotations

import pytest

from coordinator.durations import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("30m", 1800.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("1.5h", 5400.0),
        ("2h45m30s", 9930.0),
        ("100us", 0.0001),
        ("100µs", 0.0001),
        ("1000000ns", 0.001),
        ("0", 0.0),
        ("0s", 0.0),
    ],
)
def test_go_style_durations_parse_to_float_seconds(text: str, seconds: float) -> None:
    """Each unit and combinations of units add up as in Go's time.ParseDuration."""
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["10x", "", "30", "m", "1h 30m", "-5s", "1.s", "s30", "1d"])
def test_malformed_durations_are_refused_with_examples(text: str) -> None:
    """A string that is not a duration raises a message quoting it and giving examples."""
    with pytest.raises(DurationError) as err:
        parse_duration(text)
    assert str(err.value) == f"{text!r} is not a duration (examples: 30m, 1h30m)"


@pytest.mark.parametrize(
    ("seconds", "text"), [(90, "1m30s"), (0.5, "500ms"), (3600, "1h"), (0, "0s"), (5400, "1h30m")]
)
def test_seconds_format_back_to_short_durations(seconds: float, text: str) -> None:
    """format_duration renders the shortest natural Go-style form."""
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)
