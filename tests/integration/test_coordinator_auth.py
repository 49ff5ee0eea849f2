"""With auth on, the token's name is the caller: it owns its sessions and is recorded in the audit log."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import httpx2
from coordinator_fixtures import CoordinatorProcess, result_text
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

ALICE = secrets.token_hex(24)
BOB = secrets.token_hex(24)


def client_for(coord: CoordinatorProcess, http: httpx2.AsyncClient) -> Client:
    return Client(streamable_http_client(coord.mcp_url, http_client=http), mode="2026-07-28")


async def test_a_session_belongs_to_the_caller_that_opened_it(
    coordinator_factory: Callable[..., CoordinatorProcess], tmp_path: Path
) -> None:
    """Bob cannot use Alice's session id (it reads as not found), and audit records name each caller."""
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# test callers\nalice:{ALICE}\nbob:{BOB}\n")
    audit = tmp_path / "audit.jsonl"
    coord = coordinator_factory(
        config={
            "auth": {"enabled": True, "tokens_file": str(tokens)},
            "audit": {"backend": "file", "file_path": str(audit)},
        }
    )
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {ALICE}"}) as alice_http,
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {BOB}"}) as bob_http,
        client_for(coord, alice_http) as alice,
        client_for(coord, bob_http) as bob,
    ):
        sid = (await alice.call_tool("session.create", {})).structured_content["session_id"]
        wrote = await alice.call_tool("fs.write", {"session_id": sid, "path": "mine.txt", "content": "alice"})
        assert not wrote.is_error, result_text(wrote)
        stolen = await bob.call_tool("fs.read", {"session_id": sid, "path": "mine.txt"})
        assert stolen.is_error
        assert result_text(stolen) == f"session '{sid}' not found or expired; call session.create to open a new one"
        closed = await bob.call_tool("session.close", {"session_id": sid})
        assert closed.structured_content == {"session_id": sid, "closed": False}  # looks already gone to bob
        still = await alice.call_tool("fs.read", {"session_id": sid, "path": "mine.txt"})
        assert result_text(still) == "alice"
    callers = {(r["tool"], r["caller"]) for r in coord.audit_records()}
    assert ("session.create", "alice") in callers
    assert ("fs.read", "bob") in callers
