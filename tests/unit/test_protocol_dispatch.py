"""McpProtocol over plain dicts: negotiation, method table, error codes and result shapes in both eras."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from coordinator.calls import CallContext, InvalidToolArguments, ServerIdentity, UnknownToolError
from coordinator.protocol import Exchange, McpProtocol, Peer

ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}


class Tools:
    """A real, tiny ToolService: `echo`, `boom` (a bug inside the tool) and `picky` (bad arguments)."""

    def __init__(self) -> None:
        self.contexts: list[CallContext] = []

    def list_tools(self) -> list[dict[str, Any]]:
        return [{"name": "echo", "inputSchema": {"type": "object"}}]

    async def call_tool(self, name: str, arguments: Mapping[str, Any], ctx: CallContext) -> dict[str, Any]:
        self.contexts.append(ctx)
        if name == "echo":
            return {"content": [{"type": "text", "text": arguments.get("text", "")}], "isError": False}
        if name == "boom":
            raise RuntimeError("bug")
        if name == "picky":
            raise InvalidToolArguments("path must be a string")
        raise UnknownToolError(name)

    async def transport_session_closed(self, transport_session_id: str) -> None:
        return None


def make() -> tuple[McpProtocol, Tools, Exchange]:
    tools = Tools()
    protocol = McpProtocol(tools, ServerIdentity("srv", "9.9", instructions="Be nice."))
    return protocol, tools, Exchange("stdio", Peer("stdio", "stdio-1"))


def request(method: str, params: dict[str, Any] | None = None, request_id: Any = 1) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return message


async def initialized(version: str = "2025-06-18") -> tuple[McpProtocol, Tools, Exchange]:
    protocol, tools, exchange = make()
    await protocol.handle_message(
        request("initialize", {"protocolVersion": version, "capabilities": {}}), exchange
    )
    return protocol, tools, exchange


async def test_initialize_reports_identity_capabilities_and_instructions() -> None:
    """The initialize result carries the negotiated version, serverInfo, tools capability and instructions."""
    protocol, _, exchange = make()
    params = {
        "protocolVersion": "2025-03-26",
        "capabilities": {},
        "clientInfo": {"name": "ide", "version": "1"},
    }
    reply = await protocol.handle_message(request("initialize", params), exchange)
    assert isinstance(reply, dict)
    result = reply["result"]
    assert result["protocolVersion"] == "2025-03-26"
    assert result["serverInfo"] == {"name": "srv", "version": "9.9"}
    assert "tools" in result["capabilities"]
    assert result["instructions"] == "Be nice."
    assert exchange.peer is not None
    assert exchange.peer.client_name == "ide"


async def test_a_second_initialize_on_one_connection_is_refused() -> None:
    """Re-initializing a connection is -32600."""
    protocol, _, exchange = await initialized()
    reply = await protocol.handle_message(request("initialize", {"protocolVersion": "2025-06-18"}), exchange)
    assert isinstance(reply, dict)
    assert reply["error"]["code"] == -32600


async def test_ping_and_set_level_answer_empty_results_and_unknown_methods_are_32601() -> None:
    """ping and logging/setLevel return {}; a bad level is -32602; unknown methods are -32601."""
    protocol, _, exchange = await initialized()
    assert await protocol.handle_message(request("ping"), exchange) == {
        "jsonrpc": "2.0",
        "id": 1,
        "result": {},
    }
    ok = await protocol.handle_message(request("logging/setLevel", {"level": "debug"}), exchange)
    assert isinstance(ok, dict)
    assert ok["result"] == {}
    bad = await protocol.handle_message(request("logging/setLevel", {"level": "loud"}), exchange)
    assert isinstance(bad, dict)
    assert bad["error"]["code"] == -32602
    unknown = await protocol.handle_message(request("resources/list"), exchange)
    assert isinstance(unknown, dict)
    assert unknown["error"]["code"] == -32601


async def test_tool_layer_errors_map_to_json_rpc_codes() -> None:
    """Unknown tool and bad arguments are -32602; a crash inside a tool is -32603 without internals."""
    protocol, _, exchange = await initialized()
    for name, code in (("nope", -32602), ("picky", -32602), ("boom", -32603)):
        reply = await protocol.handle_message(
            request("tools/call", {"name": name, "arguments": {}}), exchange
        )
        assert isinstance(reply, dict)
        assert reply["error"]["code"] == code, name
        assert "bug" not in reply["error"]["message"]
    reply = await protocol.handle_message(request("tools/call", {"name": "echo", "arguments": [1]}), exchange)
    assert isinstance(reply, dict)
    assert reply["error"]["code"] == -32602


async def test_call_context_carries_the_connection_facts() -> None:
    """The tool layer sees transport, negotiated version, connection id and the client's name."""
    protocol, tools, exchange = make()
    params = {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "ide", "version": "1"},
    }
    await protocol.handle_message(request("initialize", params), exchange)
    await protocol.handle_message(
        request("tools/call", {"name": "echo", "arguments": {"text": "x"}}), exchange
    )
    ctx = tools.contexts[-1]
    assert (ctx.transport, ctx.protocol_version, ctx.transport_session_id) == (
        "stdio",
        "2025-11-25",
        "stdio-1",
    )
    assert ctx.client_name == "ide"
    assert len(ctx.trace_id) == 32


async def test_modern_results_are_stamped_and_ping_is_gone() -> None:
    """2026-07-28 replies carry resultType and the serverInfo stamp; ping no longer exists there."""
    protocol, _, exchange = make()
    reply = await protocol.handle_message(
        request("tools/call", {"name": "echo", "arguments": {"text": "m"}, "_meta": ENVELOPE}), exchange
    )
    assert isinstance(reply, dict)
    assert reply["result"]["resultType"] == "complete"
    assert reply["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "srv"
    ping = await protocol.handle_message(request("ping", {"_meta": ENVELOPE}), exchange)
    assert isinstance(ping, dict)
    assert ping["error"]["code"] == -32601


async def test_modern_envelope_without_capabilities_is_invalid_params() -> None:
    """The envelope needs protocol version and client capabilities: -32602 names what is missing."""
    protocol, _, exchange = make()
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}
    reply = await protocol.handle_message(request("tools/list", {"_meta": meta}), exchange)
    assert isinstance(reply, dict)
    assert reply["error"]["code"] == -32602
    assert "clientCapabilities" in reply["error"]["message"]


async def test_responses_and_notifications_get_no_reply() -> None:
    """A JSON-RPC response from the client and any notification are answered with nothing."""
    protocol, _, exchange = await initialized()
    assert await protocol.handle_message({"jsonrpc": "2.0", "id": 5, "result": {}}, exchange) is None
    assert (
        await protocol.handle_message(
            {"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}, exchange
        )
        is None
    )
