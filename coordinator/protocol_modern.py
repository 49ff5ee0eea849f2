"""The 2026-07-28 request envelope on the hot path: era detection, routing-header checks, result stamps.

Dict-only helpers for `coordinator/protocol.py`. Error answers stay the SDK's: anything the fast
checks do not accept goes to the SDK's ladder (`coordinator/sdk_inbound.py`), whose messages and
codes clients know.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    CLIENT_INFO_META_KEY,
    PROTOCOL_VERSION_META_KEY,
    SERVER_INFO_META_KEY,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from coordinator.sdk_inbound import (
    NAME_BEARING_METHODS,
    Rejection,
    decode_header_value,
    has_x_mcp_headers,
    invalid_x_mcp_header,
    param_header_rejection,
)

JSON = dict[str, Any]
_MODERN: Final = frozenset(MODERN_PROTOCOL_VERSIONS)


def modern_version_of(message: Any) -> Any:
    """The `_meta` envelope's protocol version if `message` carries one, else None (handshake era)."""
    if not isinstance(message, dict):
        return None
    params = message.get("params")
    if not isinstance(params, dict):
        return None
    meta = params.get("_meta")
    if not isinstance(meta, dict):
        return None
    return meta.get(PROTOCOL_VERSION_META_KEY)


def fast_envelope(msg: JSON, headers: Mapping[str, str] | None) -> tuple[str, Any] | None:
    """(protocol version, client info) when the envelope and routing headers are all in order, else None.

    A dict-only rendition of the success path of the SDK's `classify_inbound_request`
    (which walks ABCs and builds lists): None sends the caller to the SDK ladder for the exact
    rejection, so error answers are the SDK's word for word.
    """
    params = msg.get("params")
    if type(params) is not dict:
        return None
    meta = params.get("_meta")
    if type(meta) is not dict or CLIENT_CAPABILITIES_META_KEY not in meta:
        return None
    version = meta.get(PROTOCOL_VERSION_META_KEY)
    if type(version) is not str or version not in _MODERN:
        return None
    if headers is not None:
        if headers.get("mcp-protocol-version") != version:
            return None
        method = msg.get("method")
        if headers.get("mcp-method") != method:
            return None
        name_key = NAME_BEARING_METHODS.get(method) if type(method) is str else None
        if name_key is not None:
            wanted = params.get(name_key)
            if wanted is not None and decode_header_value(headers.get("mcp-name")) != wanted:
                return None
    return version, meta.get(CLIENT_INFO_META_KEY)


@dataclass(frozen=True, slots=True)
class _ToolHeaders:
    """A tool's `x-mcp-header` declarations, resolved once: the schema to validate against, if any."""

    schema: Any
    annotated: bool


class ParamHeaderRules:
    """`Mcp-Param-*` checks for 2026-07-28 tools/call over HTTP, with each tool's schema resolved once.

    Tools are looked up by name in `list_tools()` on first use; a name that is not a tool is not
    cached (tools/call answers it with -32602 anyway).
    """

    def __init__(self, list_tools: Callable[[], list[dict[str, Any]]]) -> None:
        self._list_tools = list_tools
        self._cache: dict[str, _ToolHeaders] = {}

    def rejection(self, msg: JSON, headers: Mapping[str, str]) -> Rejection | None:
        """The `Mcp-Param-*` headers must mirror the annotated arguments (-32020 otherwise)."""
        if msg.get("method") != "tools/call":
            return None
        params = msg.get("params")
        if not isinstance(params, dict):
            return None
        name = params.get("name")
        arguments = params.get("arguments")
        if not isinstance(name, str) or not isinstance(arguments, dict | None):
            return None
        declared = self._headers_of(name)
        if not declared.annotated:
            return None  # the validator only checks annotated arguments; undeclared headers are ignored
        return param_header_rejection(declared.schema, arguments or {}, headers)

    def _headers_of(self, name: str) -> _ToolHeaders:
        found = self._cache.get(name)
        if found is None:
            schema = next((t.get("inputSchema") for t in self._list_tools() if t.get("name") == name), None)
            valid = schema is not None and invalid_x_mcp_header(schema) is None
            annotated = valid and has_x_mcp_headers(schema)
            found = _ToolHeaders(schema=schema if valid else None, annotated=annotated)
            if schema is not None:
                self._cache[name] = found
        return found


def stamp(server_info: JSON, result: JSON) -> JSON:
    """2026-07-28 results: `resultType` is required and `_meta` carries the serverInfo stamp."""
    stamped = dict(result)
    stamped.setdefault("resultType", "complete")
    meta = stamped.get("_meta")
    stamped["_meta"] = (
        {**meta, SERVER_INFO_META_KEY: server_info}
        if isinstance(meta, dict)
        else {SERVER_INFO_META_KEY: server_info}
    )
    return stamped
