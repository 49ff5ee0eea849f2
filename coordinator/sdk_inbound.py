"""The SDK's pure request-validation helpers (`mcp/shared/inbound.py`), loaded without `import mcp`.

`import mcp.<anything>` first runs `mcp/__init__.py`, which imports the SDK's whole client and
server stack (starlette, uvicorn, httpx2 and their pydantic models): about a second of startup and
two web frameworks in a process that serves with aiohttp only. `inbound.py` itself needs only the
standard library and `mcp_types`, so it is loaded here straight from its file under a private name
(or reused when something already imported it). Codes and messages stay the SDK's; this module
only gives them types.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Final

from mcp_types import PROTOCOL_VERSION_META_KEY
from mcp_types.jsonrpc import HEADER_MISMATCH

_PRIVATE_NAME: Final = "coordinator._mcp_shared_inbound"


def _load() -> ModuleType:
    for name in ("mcp.shared.inbound", _PRIVATE_NAME):
        if name in sys.modules:
            return sys.modules[name]
    package = importlib.util.find_spec("mcp")  # locates the top-level package without importing it
    if package is None or not package.submodule_search_locations:
        raise ImportError("the `mcp` package (>= 2.3) is not installed; pip install 'mcp>=2.3'")
    path = Path(next(iter(package.submodule_search_locations))) / "shared" / "inbound.py"
    spec = importlib.util.spec_from_file_location(_PRIVATE_NAME, path)
    if spec is None or spec.loader is None or not path.is_file():
        return _import_normally()  # a future SDK layout: correct, only slower to start
    module = importlib.util.module_from_spec(spec)
    sys.modules[_PRIVATE_NAME] = module
    try:
        spec.loader.exec_module(module)
    except ImportError:
        del sys.modules[_PRIVATE_NAME]
        return _import_normally()
    return module


def _import_normally() -> ModuleType:
    import mcp.shared.inbound  # noqa: PLC0415 - the slow path: runs mcp/__init__.py and its imports

    return mcp.shared.inbound


_inbound: Final = _load()

ERROR_CODE_HTTP_STATUS: Final[Mapping[int, int]] = _inbound.ERROR_CODE_HTTP_STATUS
"""JSON-RPC error code -> HTTP status on the 2026-07-28 path (the SDK's table)."""

NAME_BEARING_METHODS: Final[Mapping[str, str]] = _inbound.NAME_BEARING_METHODS
"""Method -> the params key mirrored in the `Mcp-Name` header."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """The first failed rung of the SDK's validation ladder, as JSON-RPC error fields."""

    code: int
    message: str
    data: Any = None


@dataclass(frozen=True, slots=True)
class ModernRoute:
    """A 2026-07-28 request whose envelope passed the ladder."""

    protocol_version: str
    client_info: Any


def _rejection(found: Any) -> Rejection:
    return Rejection(code=int(found.code), message=str(found.message), data=found.data)


def classify(body: Mapping[str, Any], headers: Mapping[str, str] | None) -> ModernRoute | Rejection:
    """`classify_inbound_request`: envelope keys, routing headers, supported version, in that order."""
    verdict = _inbound.classify_inbound_request(body, headers=headers)
    if isinstance(verdict, _inbound.InboundLadderRejection):
        return _name_missing_header(_rejection(verdict), body, headers)
    return ModernRoute(protocol_version=str(verdict.protocol_version), client_info=verdict.client_info)


def _name_missing_header(found: Rejection, body: Mapping[str, Any], headers: Mapping[str, str] | None) -> Rejection:
    """Say "missing" rather than "does not match" when the routing header that failed was never sent.

    Follows the ladder's own order: MCP-Protocol-Version is checked first, Mcp-Method only once the
    version matched the envelope. Same code and data as the SDK's rejection; only the message helps more.
    """
    if headers is None or found.code != HEADER_MISMATCH:
        return found
    version = headers.get("mcp-protocol-version")
    if version is None:
        return _missing(found, "MCP-Protocol-Version", "the envelope's protocol version")
    meta = body.get("params", {}).get("_meta", {})
    if version == meta.get(PROTOCOL_VERSION_META_KEY) and "mcp-method" not in headers:
        return _missing(found, "Mcp-Method", str(body.get("method")))
    return found


def _missing(found: Rejection, name: str, expected: str) -> Rejection:
    return Rejection(
        code=found.code,
        message=f"the {name} header is missing; a 2026-07-28 request must send {name}: {expected}",
        data=found.data,
    )


def unsupported_version(requested: str) -> Rejection | None:
    """The -32022 rejection (with the supported list) for a version the modern path does not serve."""
    found = _inbound.unsupported_protocol_version_rejection(requested)
    return None if found is None else _rejection(found)


def duplicated_routing_header(headers: Iterable[tuple[str, str]]) -> str | None:
    """The routing header (MCP-Protocol-Version, Mcp-Method, Mcp-Name) sent more than once, if any."""
    found: str | None = _inbound.find_duplicated_routing_header(headers)
    return found


def param_header_rejection(
    input_schema: Any, arguments: Mapping[str, Any], headers: Mapping[str, str]
) -> Rejection | None:
    """`validate_mcp_param_headers`: each `x-mcp-header` argument mirrored by its `Mcp-Param-*` header."""
    found = _inbound.validate_mcp_param_headers(input_schema, arguments, headers)
    return None if found is None else _rejection(found)


def invalid_x_mcp_header(input_schema: Any) -> str | None:
    """Why a tool's `x-mcp-header` annotations are invalid, or None when they are fine."""
    found: str | None = _inbound.find_invalid_x_mcp_header(input_schema)
    return found


def has_x_mcp_headers(input_schema: Any) -> bool:
    """Whether a (valid) schema marks any argument `x-mcp-header`."""
    return bool(_inbound.x_mcp_header_map(input_schema))


def decode_header_value(value: str | None) -> str | None:
    """A header value with the `=?base64?...?=` sentinel decoded (None when malformed or absent)."""
    decoded: str | None = _inbound.decode_header_value(value)
    return decoded
