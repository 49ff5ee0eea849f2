"""The startup text of `make run`: commands a user can paste as they are."""

from __future__ import annotations

import json

from coordinator.app import connect_help


def test_the_claude_desktop_snippet_starts_stdio_copies_on_free_ports() -> None:
    """Each stdio copy binds health/metrics on free ports, so it never holds 8080/9090 against make run."""
    text = connect_help("http://127.0.0.1:8080", "./.workspaces")
    snippet = json.loads(text[text.index("{") :])
    server = snippet["mcpServers"]["codegen-mcp"]
    assert server["args"] == ["--transport", "stdio"]
    assert server["env"]["PORT"] == "0"
    assert server["env"]["METRICS_PORT"] == "0"
    assert server["env"]["WORKSPACE_ROOT"].endswith(".workspaces")


def test_the_inspector_command_runs_without_a_prompt_and_targets_the_mcp_endpoint() -> None:
    """npx -y fetches the Inspector without asking; the URL is the served /mcp endpoint."""
    text = connect_help("http://127.0.0.1:18080", "/tmp/ws")
    assert "npx -y @modelcontextprotocol/inspector --cli http://127.0.0.1:18080/mcp --transport http" in text
