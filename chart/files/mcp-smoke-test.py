"""helm test: wait for /ready, then make one 2026-07-28 MCP tools/call of echo through the Service."""

import json
import os
import sys
import time
import urllib.error
import urllib.request

BASE = os.environ["MCP_URL"].rstrip("/")
READY_TIMEOUT = float(os.environ.get("READY_TIMEOUT_SECONDS", "60"))
PROTOCOL = "2026-07-28"
if not BASE.startswith(("http://", "https://")):
    sys.exit(f"MCP_URL={BASE!r} must be an http:// or https:// URL")
# S310 below: the scheme is checked just above.

deadline = time.monotonic() + READY_TIMEOUT
while True:
    try:
        with urllib.request.urlopen(BASE + "/ready", timeout=5) as answer:  # noqa: S310
            print("GET /ready:", answer.status, answer.read().decode()[:300])
            break
    except (urllib.error.URLError, OSError) as exc:
        if time.monotonic() > deadline:
            sys.exit(f"GET {BASE}/ready never answered 200 within {READY_TIMEOUT:.0f}s: {exc}")
        time.sleep(2)

headers = {
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": PROTOCOL,
    "Mcp-Method": "tools/call",
    "Mcp-Name": "echo",
}
tokens_file = os.environ.get("TOKENS_FILE", "")
if tokens_file and os.path.exists(tokens_file):
    with open(tokens_file) as tokens:
        for line in tokens:
            entry = line.strip()
            if entry and not entry.startswith("#") and ":" in entry:
                headers["Authorization"] = "Bearer " + entry.split(":", 1)[1].strip()
                break

request = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {
        "name": "echo",
        "arguments": {"text": "hello"},
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": PROTOCOL,
            "io.modelcontextprotocol/clientCapabilities": {},
        },
    },
}
post = urllib.request.Request(  # noqa: S310
    BASE + "/mcp", data=json.dumps(request).encode(), headers=headers, method="POST"
)
try:
    with urllib.request.urlopen(post, timeout=60) as answer:  # noqa: S310
        content_type = answer.headers.get("Content-Type", "")
        raw = answer.read().decode()
except urllib.error.HTTPError as exc:
    sys.exit(f"POST {BASE}/mcp answered {exc.code}: {exc.read().decode()[:500]}")

if content_type.startswith("text/event-stream"):
    events = [
        json.loads(line[5:]) for line in raw.splitlines() if line.startswith("data:") and line[5:].strip()
    ]
    replies = [event for event in events if event.get("id") == 1]
    if not replies:
        sys.exit("POST /mcp: the event stream carried no reply with id 1: " + raw[:500])
    reply = replies[-1]
else:
    reply = json.loads(raw)

result = reply.get("result")
if not isinstance(result, dict) or result.get("isError") or "hello" not in json.dumps(result):
    sys.exit("tools/call echo failed: " + raw[:500])
print("tools/call echo:", json.dumps(result)[:300])
