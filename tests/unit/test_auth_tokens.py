"""Token files for bearer auth (`name:token` lines): what loads, and how each mistake is explained."""

from __future__ import annotations

from pathlib import Path

import pytest

from coordinator.auth import AuthConfigError, load_tokens


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tokens"
    path.write_text(text, "utf-8")
    return path


def test_name_token_lines_load_with_comments_and_spaces(tmp_path: Path) -> None:
    """Each `name:token` line maps a caller to its token; comments, blanks and spaces are ignored."""
    path = write(tmp_path, "# callers\nci-bot:0123456789abcdef0123\n\n  alice : fedcba9876543210fe:dc\n")
    assert load_tokens(path) == {"ci-bot": "0123456789abcdef0123", "alice": "fedcba9876543210fe:dc"}


def test_a_missing_file_names_the_path(tmp_path: Path) -> None:
    """An unreadable file is an AuthConfigError that names it."""
    with pytest.raises(AuthConfigError, match=r"nope\.txt"):
        load_tokens(tmp_path / "nope.txt")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("# nothing here\n", "lists no tokens"),
        ("just-a-token-without-a-name\n", "line 1: expected `name:token`"),
        (":0123456789abcdef0123\n", "expected `name:token`"),
        ("alice:short\n", "at least 16"),
        ("alice:0123456789 abcdef0123\n", "without whitespace"),
        ("alice:0123456789abcdef0123\nalice:fedcba9876543210fedc\n", "listed twice"),
        ("alice:0123456789abcdef0123\nbob:0123456789abcdef0123\n", "line 2: 'alice' and 'bob' share a token"),
    ],
)
def test_malformed_token_files_are_explained(tmp_path: Path, text: str, fragment: str) -> None:
    """Empty files, nameless or short tokens, duplicates and shared tokens each say what to fix."""
    with pytest.raises(AuthConfigError, match=fragment):
        load_tokens(write(tmp_path, text))
