"""The worker's error type and its stable error codes, each with its HTTP status."""

from __future__ import annotations

from typing import Any, Final

HTTP_STATUS: Final[dict[str, int]] = {
    "invalid_argument": 400,
    "path_outside_workspace": 403,
    "not_found": 404,
    "session_not_found": 404,
    "too_large": 413,
    "timeout": 504,
    "capacity_exhausted": 503,
    "internal": 500,
}


class WorkerError(Exception):
    """A failure the client should see as `{"error": {"code", "message", "details"?}}`.

    `code` is one of `HTTP_STATUS`'s keys; the message reads like help: it names the field,
    the bad value and what is allowed.
    """

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        if code not in HTTP_STATUS:
            raise ValueError(f"unknown error code {code!r}; allowed: {sorted(HTTP_STATUS)}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}

    @property
    def status(self) -> int:
        """The HTTP status that carries this error."""
        return HTTP_STATUS[self.code]

    def to_json(self) -> dict[str, Any]:
        """The wire shape of this error."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return {"error": body}


def invalid(message: str) -> WorkerError:
    """An `invalid_argument` error."""
    return WorkerError("invalid_argument", message)
