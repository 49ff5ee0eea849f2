"""Streamable HTTP and legacy SSE wire rules on /mcp, /sse and /messages, checked with raw HTTP requests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from mcp_fixtures import (
    ACCEPT_BOTH,
    ENVELOPE,
    ServerProcess,
    initialize,
    modern_call,
    modern_headers,
    read_sse_until,
    running_protocol_server,
    sse_messages,
)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with running_protocol_server({"keepalive_interval": 0.05}) as proc:
        yield proc


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def stats(http: aiohttp.ClientSession, server: ServerProcess) -> dict[str, Any]:
    async with http.post(server.mcp_url, json=modern_call("stats", {}), headers=modern_headers(name="stats")) as resp:
        body = await resp.json()
    result: dict[str, Any] = body["result"]["structuredContent"]
    return result


async def wait_for_stat(http: aiohttp.ClientSession, server: ServerProcess, key: str, at_least: int) -> None:
    async with asyncio.timeout(10):
        while (await stats(http, server))[key] < at_least:
            await asyncio.sleep(0.02)


# ----- 2026-07-28 -----------------------------------------------------------------------------


async def test_modern_echo_is_a_plain_json_reply_without_a_session_id(
    server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    """A quick 2026-07-28 call answers application/json, stamped with resultType and serverInfo."""
    async with http.post(
        server.mcp_url, json=modern_call("echo", {"text": "hi"}), headers=modern_headers(name="echo")
    ) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        assert "Mcp-Session-Id" not in resp.headers
        body = await resp.json()
    result = body["result"]
    assert result["content"] == [{"type": "text", "text": "hi"}]
    assert result["resultType"] == "complete"
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"] == {
        "name": "protocol-test",
        "version": "1.2.3",
    }


async def test_server_discover_lists_versions_capabilities_and_instructions(
    server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    """server/discover names every supported version, the tools capability and the instructions."""
    body = {"jsonrpc": "2.0", "id": 7, "method": "server/discover", "params": {"_meta": ENVELOPE}}
    async with http.post(server.mcp_url, json=body, headers=modern_headers("server/discover")) as resp:
        assert resp.status == 200
        result = (await resp.json())["result"]
    assert "2026-07-28" in result["supportedVersions"]
    assert "2024-11-05" in result["supportedVersions"]
    assert "tools" in result["capabilities"]
    assert result["instructions"] == "Test tools only."
    assert result["serverInfo"]["name"] == "protocol-test"


async def test_modern_batch_is_refused(server: ServerProcess, http: aiohttp.ClientSession) -> None:
    """2026-07-28 forbids JSON-RPC batches: 400 with -32600."""
    batch = [modern_call("echo", {"text": "a"}, 1), modern_call("echo", {"text": "b"}, 2)]
    async with http.post(server.mcp_url, json=batch, headers=modern_headers(name="echo")) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == -32600


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({"Mcp-Method": "tools/list"}, "mcp-method"),
        ({"Mcp-Name": "fail"}, "mcp-name"),
        ({"MCP-Protocol-Version": "2026-07-28", "Mcp-Param-Session-Id": "other"}, "Mcp-Param-Session-Id"),
    ],
)
async def test_modern_routing_headers_that_disagree_with_the_body_are_rejected(
    server: ServerProcess, http: aiohttp.ClientSession, headers: dict[str, str], fragment: str
) -> None:
    """Mcp-Method, Mcp-Name and Mcp-Param-* must mirror the body: 400 with -32020 otherwise."""
    sent = modern_headers(name="stamp", **{"Mcp-Param-Session-Id": "abc"})
    sent.update(headers)
    async with http.post(server.mcp_url, json=modern_call("stamp", {"session_id": "abc"}), headers=sent) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert error["code"] == -32020
    assert fragment.lower() in error["message"].lower()


async def test_a_missing_mcp_method_header_is_named_as_missing_not_as_a_mismatch(
    server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    """A 2026-07-28 request without Mcp-Method hears that the header is missing and what to send."""
    sent = modern_headers(name="stamp", **{"Mcp-Param-Session-Id": "abc"})
    del sent["Mcp-Method"]
    async with http.post(server.mcp_url, json=modern_call("stamp", {"session_id": "abc"}), headers=sent) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert error["code"] == -32020
    assert error["message"] == (
        "the Mcp-Method header is missing; a 2026-07-28 request must send Mcp-Method: tools/call"
    )


async def test_missing_mcp_param_header_for_an_annotated_argument_is_rejected(
    server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    """An x-mcp-header argument sent without its Mcp-Param header is a header mismatch."""
    call = modern_call("stamp", {"session_id": "abc"})
    async with http.post(server.mcp_url, json=call, headers=modern_headers(name="stamp")) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == -32020


async def test_modern_unsupported_version_names_the_supported_ones(
    server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    """A version neither era serves is refused with -32022 and the supported list."""
    call = modern_call("echo", {"text": "x"})
    call["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = "2099-01-01"
    headers = modern_headers(name="echo", **{"MCP-Protocol-Version": "2099-01-01"})
    async with http.post(server.mcp_url, json=call, headers=headers) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert error["code"] == -32022
    assert "2026-07-28" in error["data"]["supported"]


async def test_modern_unknown_method_is_404_method_not_found(
    server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    """An unserved method on the stateless path is -32601, mapped to HTTP 404."""
    body = {"jsonrpc": "2.0", "id": 3, "method": "prompts/list", "params": {"_meta": ENVELOPE}}
    async with http.post(server.mcp_url, json=body, headers=modern_headers("prompts/list")) as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == -32601


async def test_modern_unknown_tool_is_400_invalid_params(server: ServerProcess, http: aiohttp.ClientSession) -> None:
    """tools/call for a missing tool is -32602 (HTTP 400), per the spec's tool error rules."""
    async with http.post(server.mcp_url, json=modern_call("nope", {}), headers=modern_headers(name="nope")) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert error["code"] == -32602
    assert "nope" in error["message"]


async def test_modern_notification_is_acknowledged_202(server: ServerProcess, http: aiohttp.ClientSession) -> None:
    """A notification POST on the stateless path is accepted and dropped."""
    note = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}
    async with http.post(server.mcp_url, json=note, headers=modern_headers("notifications/cancelled")) as resp:
        assert resp.status == 202


async def test_modern_get_and_delete_are_405(server: ServerProcess, http: aiohttp.ClientSession) -> None:
    """The stateless era has no GET stream and no session to delete."""
    headers = {"MCP-Protocol-Version": "2026-07-28", "Accept": "text/event-stream"}
    async with http.get(server.mcp_url, headers=headers) as resp:
        assert resp.status == 405
        assert resp.headers["Allow"] == "POST"
    async with http.delete(server.mcp_url, headers=headers) as resp:
        assert resp.status == 405


async def test_progress_token_turns_the_reply_into_an_sse_stream(
    server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    """With a progressToken the reply is SSE: progress notifications first, then the result."""
    call = modern_call("progress", {"steps": 2}, progressToken="tok-1")
    async with http.post(server.mcp_url, json=call, headers=modern_headers(name="progress")) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/event-stream"
        assert resp.headers["X-Accel-Buffering"] == "no"
        messages = sse_messages(await resp.text())
    progress = [m["params"] for m in messages if m.get("method") == "notifications/progress"]
    assert [p["progress"] for p in progress] == [1, 2]
    assert all(p["progressToken"] == "tok-1" for p in progress)
    assert messages[-1]["result"]["content"][0]["text"] == "done 2"


async def test_slow_call_gets_keepalive_comments_on_an_sse_stream(
    server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    """A call slower than keepalive_interval is answered over SSE with `: ping` comments meanwhile."""
    call = modern_call("slow", {"seconds": 0.4})
    async with http.post(server.mcp_url, json=call, headers=modern_headers(name="slow")) as resp:
        assert resp.content_type == "text/event-stream"
        assert resp.headers["X-Accel-Buffering"] == "no"
        text = await resp.text()
    assert ": ping" in text
    assert sse_messages(text)[-1]["result"]["content"][0]["text"] == "slept"


async def test_json_only_client_gets_json_even_for_a_slow_call(
    server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    """A client that accepts only application/json is never sent SSE."""
    headers = modern_headers(name="slow", Accept="application/json")
    async with http.post(server.mcp_url, json=modern_call("slow", {"seconds": 0.2}), headers=headers) as resp:
        assert resp.content_type == "application/json"
        assert (await resp.json())["result"]["content"][0]["text"] == "slept"


async def test_closing_the_modern_response_stream_cancels_the_call(
    server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    """2026-07-28 cancellation is closing the stream: the tool's task is cancelled."""
    before = (await stats(http, server))["cancelled"]
    async with aiohttp.ClientSession() as other:
        resp = await other.post(
            server.mcp_url, json=modern_call("slow", {"seconds": 60}), headers=modern_headers(name="slow")
        )
        async with asyncio.timeout(10):
            await read_sse_until(resp, b": ping")
        resp.close()
    await wait_for_stat(http, server, "cancelled", before + 1)


# ----- handshake era ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"])
async def test_initialize_answers_the_clients_version_when_supported(
    server: ServerProcess, http: aiohttp.ClientSession, version: str
) -> None:
    """Version negotiation: a supported requested version is echoed back, and calls work at it."""
    session_id, result = await initialize(http, server.mcp_url, version)
    assert result["protocolVersion"] == version
    assert result["serverInfo"] == {"name": "protocol-test", "version": "1.2.3"}
    headers = {"Accept": ACCEPT_BOTH, "Mcp-Session-Id": session_id, "MCP-Protocol-Version": version}
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "v"}},
    }
    async with http.post(server.mcp_url, json=call, headers=headers) as resp:
        assert resp.status == 200
        assert resp.headers["Mcp-Session-Id"] == session_id
        assert (await resp.json())["result"]["content"][0]["text"] == "v"


async def test_initialize_with_an_unknown_version_gets_the_latest_handshake_version(
    server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    """A requested version the server lacks is answered with the newest handshake version."""
    _, result = await initialize(http, server.mcp_url, "1999-01-01")
    assert result["protocolVersion"] == "2025-11-25"


async def test_requests_without_or_with_an_unknown_session_id_are_400_and_404(
    server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    """After-initialize requests need Mcp-Session-Id: 400 when missing, 404 when unknown."""
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    async with http.post(server.mcp_url, json=call, headers={"Accept": ACCEPT_BOTH}) as resp:
        assert resp.status == 400
        assert "Mcp-Session-Id" in (await resp.json())["error"]["message"]
    async with http.post(server.mcp_url, json=call, headers={"Accept": ACCEPT_BOTH, "Mcp-Session-Id": "nope"}) as resp:
        assert resp.status == 404


async def test_wrong_protocol_version_header_after_initialize_is_400(
    server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    """An unsupported or mismatched MCP-Protocol-Version on a session is refused with a clear message."""
    session_id, _ = await initialize(http, server.mcp_url, "2025-06-18")
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    for version in ("1999-01-01", "2025-03-26"):
        headers = {"Accept": ACCEPT_BOTH, "Mcp-Session-Id": session_id, "MCP-Protocol-Version": version}
        async with http.post(server.mcp_url, json=call, headers=headers) as resp:
            assert resp.status == 400
            message = (await resp.json())["error"]["message"]
        assert version in message
        assert "2025-06-18" in message


async def test_malformed_json_is_a_400_parse_error_in_both_eras(
    server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    """A body that is not JSON gets -32700 and HTTP 400."""
    for headers in ({"Accept": ACCEPT_BOTH}, modern_headers()):
        async with http.post(
            server.mcp_url, data=b"{not json", headers={**headers, "Content-Type": "application/json"}
        ) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["code"] == -32700


async def test_invalid_json_rpc_object_is_invalid_request(server: ServerProcess, http: aiohttp.ClientSession) -> None:
    """A JSON object that is not JSON-RPC 2.0 is -32600 (400)."""
    session_id, _ = await initialize(http, server.mcp_url)
    headers = {"Accept": ACCEPT_BOTH, "Mcp-Session-Id": session_id}
    async with http.post(
        server.mcp_url, json={"jsonrpc": "1.0", "id": 1, "method": "tools/list"}, headers=headers
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == -32600


async def test_batches_are_answered_only_at_2025_03_26(server: ServerProcess, http: aiohttp.ClientSession) -> None:
    """2025-03-26 allowed JSON-RPC batches; 2025-06-18 and later refuse them with -32600."""
    batch = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "a"}},
        },
        {"jsonrpc": "2.0", "id": 2, "method": "ping"},
    ]
    session_id, _ = await initialize(http, server.mcp_url, "2025-03-26")
    headers = {
        "Accept": "application/json",
        "Mcp-Session-Id": session_id,
        "MCP-Protocol-Version": "2025-03-26",
    }
    async with http.post(server.mcp_url, json=batch, headers=headers) as resp:
        assert resp.status == 200
        replies = await resp.json()
    assert sorted(r["id"] for r in replies) == [1, 2]
    session_id, _ = await initialize(http, server.mcp_url, "2025-06-18")
    headers = {"Accept": ACCEPT_BOTH, "Mcp-Session-Id": session_id, "MCP-Protocol-Version": "2025-06-18"}
    async with http.post(server.mcp_url, json=batch, headers=headers) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert error["code"] == -32600
    assert "batch" in error["message"]


async def test_notifications_cancelled_stops_a_handshake_era_call(
    server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    """notifications/cancelled with the request id cancels the running tool."""
    before = (await stats(http, server))["cancelled"]
    session_id, _ = await initialize(http, server.mcp_url)
    headers = {"Accept": ACCEPT_BOTH, "Mcp-Session-Id": session_id, "MCP-Protocol-Version": "2025-11-25"}
    call = {
        "jsonrpc": "2.0",
        "id": 42,
        "method": "tools/call",
        "params": {"name": "slow", "arguments": {"seconds": 60}},
    }
    async with aiohttp.ClientSession() as other:
        pending = asyncio.ensure_future(other.post(server.mcp_url, json=call, headers=headers))
        cancel = {
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": 42, "reason": "test"},
        }
        async with asyncio.timeout(10):
            while (await stats(http, server))["cancelled"] == before:
                async with http.post(server.mcp_url, json=cancel, headers=headers) as resp:
                    assert resp.status == 202
                await asyncio.sleep(0.02)
            resp = await pending
            await resp.read()
            resp.close()


async def test_get_stream_sends_keepalives_and_delete_ends_the_session(
    server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    """GET opens an SSE stream with pings; DELETE closes the session, tells the tool layer, then 404s."""
    closed_before = (await stats(http, server))["closed_sessions"]
    session_id, _ = await initialize(http, server.mcp_url)
    headers = {
        "Accept": "text/event-stream",
        "Mcp-Session-Id": session_id,
        "MCP-Protocol-Version": "2025-11-25",
    }
    async with http.get(server.mcp_url, headers=headers) as stream:
        assert stream.status == 200
        assert stream.headers["X-Accel-Buffering"] == "no"
        async with asyncio.timeout(10):
            assert b": ping" in await read_sse_until(stream, b": ping")
        async with http.get(server.mcp_url, headers=headers) as second:
            assert second.status == 409
        async with http.delete(server.mcp_url, headers=headers) as resp:
            assert resp.status == 200
    await wait_for_stat(http, server, "closed_sessions", closed_before + 1)
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    async with http.post(server.mcp_url, json=call, headers={**headers, "Accept": ACCEPT_BOTH}) as resp:
        assert resp.status == 404


async def test_handshake_session_expires_when_idle(http: aiohttp.ClientSession) -> None:
    """An idle handshake session is closed by the reaper and later requests get 404."""
    with running_protocol_server({"keepalive_interval": 0.01}) as short:  # idle timeout = 50 x keepalive
        session_id, _ = await initialize(http, short.mcp_url)
        headers = {"Accept": ACCEPT_BOTH, "Mcp-Session-Id": session_id}
        call = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        async with asyncio.timeout(10):
            while True:
                async with http.post(short.mcp_url, json=call, headers=headers) as resp:
                    if resp.status == 404:
                        break
                await asyncio.sleep(0.8)


async def test_initialize_beyond_the_session_cap_is_503_until_one_is_deleted(
    http: aiohttp.ClientSession,
) -> None:
    """Handshake sessions are capped per process; DELETE frees a slot."""
    with running_protocol_server({"keepalive_interval": 1}, extra_args=("--max-sessions", "1")) as capped:
        session_id, _ = await initialize(http, capped.mcp_url)
        body = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        }
        async with http.post(capped.mcp_url, json=body, headers={"Accept": ACCEPT_BOTH}) as resp:
            assert resp.status == 503
            assert "DELETE" in (await resp.json())["error"]["message"]
        async with http.delete(capped.mcp_url, headers={"Mcp-Session-Id": session_id}) as resp:
            assert resp.status == 200
        await initialize(http, capped.mcp_url)


# ----- legacy SSE ---------------------------------------------------------------------------------


async def test_legacy_sse_endpoint_event_and_replies_on_the_stream(
    server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    """GET /sse names /messages?session_id=..; POSTs are 202 and replies arrive on the stream."""
    closed_before = (await stats(http, server))["closed_sessions"]
    async with aiohttp.ClientSession() as sse:
        stream = await sse.get(f"{server.url}/sse", headers={"Accept": "text/event-stream"})
        assert stream.headers["X-Accel-Buffering"] == "no"
        async with asyncio.timeout(10):
            first = await read_sse_until(stream, b"\n\n")
        assert first.startswith(b"event: endpoint\ndata: /messages?session_id=")
        endpoint = first.split(b"data: ", 1)[1].split(b"\n", 1)[0].decode()
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2024-11-05",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        }
        async with http.post(server.url + endpoint, json=init) as resp:
            assert resp.status == 202
        async with asyncio.timeout(10):
            seen = await read_sse_until(stream, b'"id":1')
        reply = next(m for m in sse_messages(seen.decode()) if m.get("id") == 1)
        assert reply["result"]["protocolVersion"] == "2024-11-05"
        async with http.post(f"{server.url}/messages?session_id=unknown", json=init) as resp:
            assert resp.status == 404
        async with http.post(f"{server.url}/messages", json=init) as resp:
            assert resp.status == 400
        async with http.post(
            server.url + endpoint, data=b"{oops", headers={"Content-Type": "application/json"}
        ) as resp:
            assert resp.status == 400
        async with asyncio.timeout(10):
            assert b": ping" in await read_sse_until(stream, b": ping")
        stream.close()
    await wait_for_stat(http, server, "closed_sessions", closed_before + 1)


async def test_stdio_like_clients_get_an_error_for_calls_before_initialize(
    server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    """On a legacy SSE session, tools/call before initialize is refused with a helpful -32600."""
    async with aiohttp.ClientSession() as sse:
        stream = await sse.get(f"{server.url}/sse")
        async with asyncio.timeout(10):
            first = await read_sse_until(stream, b"\n\n")
        endpoint = first.split(b"data: ", 1)[1].split(b"\n", 1)[0].decode()
        call = {"jsonrpc": "2.0", "id": 5, "method": "tools/list"}
        async with http.post(server.url + endpoint, json=call) as resp:
            assert resp.status == 202
        async with asyncio.timeout(10):
            seen = await read_sse_until(stream, b'"id":5')
        stream.close()
    reply = next(m for m in sse_messages(seen.decode()) if m.get("id") == 5)
    assert reply["error"]["code"] == -32600
    assert "initialize" in reply["error"]["message"]
    assert json.dumps(reply)
