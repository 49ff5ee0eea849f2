"""Bearer-token files: one `name:token` per line, read once at startup.

Example file (mode 0600; tokens are secrets)::

    # caller:token
    ci-bot:9f1c6c0d6a2e4b55a7d5c3e8b1f0a2d4
    alice: 0a8e3f5d7c2b4e6f9a1c3d5e7f9b2d4c

Blank lines and `#` comments are ignored, and spaces around the colon are allowed. The name is
what audit records and logs show as `caller`; the token never leaves this process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

MIN_TOKEN_LENGTH: Final = 16
"""Shorter tokens are refused: they can be guessed."""


class AuthConfigError(ValueError):
    """The token file is missing, unreadable or malformed; the message names the file, line and fix."""


def load_tokens(path: str | Path) -> dict[str, str]:
    """Read `path` and return `{caller name: token}`.

    Raises AuthConfigError when the file cannot be read, holds no token, has a line that is not
    `name:token`, a token shorter than MIN_TOKEN_LENGTH or containing whitespace, a name given
    twice, or two names sharing a token (a caller must be identifiable from its token alone).
    """
    file = Path(path)
    where = f"auth token file {str(file)!r}"
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise AuthConfigError(f"{where} cannot be read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise AuthConfigError(f"{where} is not UTF-8 text") from exc
    tokens: dict[str, str] = {}
    owners: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, colon, token = (part.strip() for part in line.partition(":"))
        at = f"{where}, line {number}"
        if not colon or not name:
            raise AuthConfigError(
                f"{at}: expected `name:token` (for example `ci-bot:9f1c6c0d6a2e4b55a7d5c3e8`)"
            )
        if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in token):
            raise AuthConfigError(
                f"{at}: the token for {name!r} must be at least {MIN_TOKEN_LENGTH} characters without "
                "whitespace (generate one with `openssl rand -hex 32`)"
            )
        if name in tokens:
            raise AuthConfigError(f"{at}: {name!r} is listed twice; keep one line per caller")
        if token in owners:
            raise AuthConfigError(
                f"{at}: {owners[token]!r} and {name!r} share a token; give each caller its own"
            )
        owners[token] = name
        tokens[name] = token
    if not tokens:
        raise AuthConfigError(f"{where} lists no tokens; add lines of the form `name:token`")
    return tokens
