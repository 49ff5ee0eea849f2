"""The MCP Tool definitions (input/output schemas, annotations) the coordinator serves, built once."""

from __future__ import annotations

from typing import Any

SESSION_ID: dict[str, Any] = {
    "type": "string",
    "pattern": "^[A-Za-z0-9_-]{1,128}$",
    "x-mcp-header": "Session-Id",
    "description": (
        "Workspace session from session.create. Omit it to use this connection's session (stdio, SSE, "
        "handshake-era HTTP) or, over stateless HTTP, to open a new session whose id comes back in the "
        "result; pass that id on later calls to keep working on the same files."
    ),
}
_PATH = {
    "type": "string",
    "minLength": 1,
    "description": "Path relative to the workspace root, e.g. src/main.py.",
}
_ASYNC = {
    "type": "boolean",
    "default": False,
    "description": (
        "Return at once with a task_id; poll task.get_status and fetch the outcome with task.get_result."
    ),
}
_SID_OUT = {"type": "string", "description": "The session the call ran in; pass it on later calls."}
_TASK_OUT = {"type": "string", "description": "Set for async: true: the task to poll."}
_STATUS_OUT = {"type": "string", "enum": ["running", "completed", "failed"]}

_READ_ONLY = {"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True, "openWorldHint": False}


def _obj(properties: dict[str, Any], required: tuple[str, ...] = (), extra: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if not extra:
        schema["additionalProperties"] = False
    return schema


TOOLS: list[dict[str, Any]] = [
    {
        "name": "echo",
        "title": "Echo",
        "description": "Return the given text unchanged. Use it to check that the server answers.",
        "inputSchema": _obj({"text": {"type": "string", "description": "Text to send back."}}, ("text",)),
        "outputSchema": _obj({"text": {"type": "string"}}, ("text",), extra=True),
        "annotations": {**_READ_ONLY, "title": "Echo"},
    },
    {
        "name": "session.create",
        "title": "Open a workspace session",
        "description": (
            "Open a new, empty, isolated workspace and return its session_id. Pass the session_id to every "
            "fs.*, run.python, pkg.install and artifact.get call that should see the same files. Sessions "
            "expire after a period of inactivity."
        ),
        "inputSchema": _obj({}),
        "outputSchema": _obj(
            {"session_id": {"type": "string"}, "expires_after_idle_seconds": {"type": "number"}},
            ("session_id",),
            extra=True,
        ),
        "annotations": {
            "readOnlyHint": False,
            "destructiveHint": False,
            "idempotentHint": False,
            "openWorldHint": False,
            "title": "Open a workspace session",
        },
    },
    {
        "name": "session.close",
        "title": "Close a workspace session",
        "description": "Close a session and delete its workspace and every file in it. It cannot be undone.",
        "inputSchema": _obj({"session_id": SESSION_ID}, ("session_id",)),
        "outputSchema": _obj(
            {"session_id": {"type": "string"}, "closed": {"type": "boolean"}},
            ("session_id", "closed"),
            extra=True,
        ),
        "annotations": {
            "readOnlyHint": False,
            "destructiveHint": True,
            "idempotentHint": True,
            "openWorldHint": False,
            "title": "Close a workspace session",
        },
    },
    {
        "name": "fs.read",
        "title": "Read a file",
        "description": (
            "Read a file from the session workspace. Text comes back as UTF-8; binary files come back base64 "
            "encoded (see encoding). Use offset and limit to page through large files."
        ),
        "inputSchema": _obj(
            {
                "session_id": SESSION_ID,
                "path": _PATH,
                "offset": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Byte offset to start reading at.",
                },
                "limit": {"type": "integer", "minimum": 1, "description": "Maximum number of bytes to read."},
            },
            ("path",),
        ),
        "outputSchema": _obj(
            {
                "session_id": _SID_OUT,
                "path": {"type": "string"},
                "content": {"type": "string"},
                "encoding": {"type": "string", "enum": ["utf-8", "base64"]},
                "size": {"type": "integer"},
                "offset": {"type": "integer"},
                "length": {"type": "integer"},
                "eof": {"type": "boolean"},
            },
            ("session_id", "path", "content", "encoding"),
            extra=True,
        ),
        "annotations": {**_READ_ONLY, "title": "Read a file"},
    },
    {
        "name": "fs.write",
        "title": "Write a file",
        "description": (
            "Create or overwrite a file in the session workspace (parent directories are created). Give the "
            "text in content (contents is accepted too). Set append to add to the end instead."
        ),
        "inputSchema": _obj(
            {
                "session_id": SESSION_ID,
                "path": _PATH,
                "content": {"type": "string", "description": "The file's new content."},
                "contents": {"type": "string", "description": "Alias of content."},
                "encoding": {
                    "type": "string",
                    "enum": ["utf-8", "base64"],
                    "default": "utf-8",
                    "description": "utf-8 for text; base64 to write binary data.",
                },
                "append": {
                    "type": "boolean",
                    "default": False,
                    "description": "Append instead of overwriting.",
                },
            },
            ("path",),
        ),
        "outputSchema": _obj(
            {
                "session_id": _SID_OUT,
                "path": {"type": "string"},
                "bytes_written": {"type": "integer"},
                "size": {"type": "integer"},
            },
            ("session_id", "path", "bytes_written"),
            extra=True,
        ),
        "annotations": {
            "readOnlyHint": False,
            "destructiveHint": True,
            "idempotentHint": False,
            "openWorldHint": False,
            "title": "Write a file",
        },
    },
    {
        "name": "fs.list",
        "title": "List files",
        "description": (
            "List files and directories in the session workspace, optionally recursively or by glob."
        ),
        "inputSchema": _obj(
            {
                "session_id": SESSION_ID,
                "path": {
                    "type": "string",
                    "default": ".",
                    "description": "Directory to list, relative to the root.",
                },
                "recursive": {"type": "boolean", "default": False, "description": "Include subdirectories."},
                "glob": {
                    "type": "string",
                    "description": (
                        "Only entries matching this fnmatch pattern: a pattern without / matches file names "
                        "(*.py), one with / matches the path from the workspace root (src/*.py; * also "
                        "crosses /). **/ matches any depth, including none, and lists recursively, "
                        "e.g. **/*.csv."
                    ),
                },
            }
        ),
        "outputSchema": _obj(
            {
                "session_id": _SID_OUT,
                "path": {"type": "string"},
                "entries": {"type": "array", "items": {"type": "object"}},
                "truncated": {"type": "boolean"},
            },
            ("session_id", "entries"),
            extra=True,
        ),
        "annotations": {**_READ_ONLY, "title": "List files"},
    },
    {
        "name": "run.python",
        "title": "Run Python",
        "description": (
            "Run Python code (or a .py file from the workspace) in the session's isolated environment, "
            "with the workspace as the working directory. Returns exit_code, stdout and stderr; an exception "
            "in the code is reported as a failed run with its traceback in stderr. Packages from pkg.install "
            "are importable."
        ),
        "inputSchema": _obj(
            {
                "session_id": SESSION_ID,
                "code": {
                    "type": "string",
                    "description": "Python source to run. Give code or file, not both.",
                },
                "file": {
                    "type": "string",
                    "minLength": 1,
                    "description": "Workspace path of a .py file to run.",
                },
                "args": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Command-line arguments (sys.argv[1:]).",
                },
                "stdin": {"type": "string", "description": "Text fed to the program's standard input."},
                "timeout": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "description": "Seconds before the run is killed (capped by the worker's limit).",
                },
                "async": _ASYNC,
            }
        ),
        "outputSchema": _obj(
            {
                "session_id": _SID_OUT,
                "exit_code": {"type": "integer"},
                "stdout": {"type": "string"},
                "stderr": {"type": "string"},
                "duration_ms": {"type": "number"},
                "stdout_truncated": {"type": "boolean"},
                "stderr_truncated": {"type": "boolean"},
                "task_id": _TASK_OUT,
                "status": _STATUS_OUT,
            },
            ("session_id",),
            extra=True,
        ),
        "annotations": {
            "readOnlyHint": False,
            "destructiveHint": True,
            "idempotentHint": False,
            "openWorldHint": True,
            "title": "Run Python",
        },
    },
    {
        "name": "pkg.install",
        "title": "Install Python packages",
        "description": (
            "pip-install packages into the session's environment so run.python can import them. Give "
            'requirement specifiers only, e.g. ["requests", "numpy>=2"]; pip options are refused.'
        ),
        "inputSchema": _obj(
            {
                "session_id": SESSION_ID,
                "packages": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "string", "minLength": 1},
                    "description": "Requirement specifiers, e.g. requests or pandas==2.2.3.",
                },
                "async": _ASYNC,
            },
            ("packages",),
        ),
        "outputSchema": _obj(
            {
                "session_id": _SID_OUT,
                "exit_code": {"type": "integer"},
                "output": {"type": "string"},
                "installed": {"type": "object", "additionalProperties": {"type": "string"}},
                "task_id": _TASK_OUT,
                "status": _STATUS_OUT,
            },
            ("session_id",),
            extra=True,
        ),
        "annotations": {
            "readOnlyHint": False,
            "destructiveHint": False,
            "idempotentHint": True,
            "openWorldHint": True,
            "title": "Install Python packages",
        },
    },
    {
        "name": "task.get_status",
        "title": "Get a task's status",
        "description": "Status of an async run.python or pkg.install task: running, completed or failed.",
        "inputSchema": _obj(
            {"task_id": {"type": "string", "minLength": 1, "description": "From the async call."}},
            ("task_id",),
        ),
        "outputSchema": _obj(
            {
                "task_id": {"type": "string"},
                "tool": {"type": "string"},
                "status": _STATUS_OUT,
                "created_at": {"type": "number"},
                "finished_at": {"type": "number"},
                "duration_ms": {"type": "number"},
                "session_id": {"type": "string"},
            },
            ("task_id", "status"),
            extra=True,
        ),
        "annotations": {**_READ_ONLY, "title": "Get a task's status"},
    },
    {
        "name": "task.get_result",
        "title": "Get a task's result",
        "description": (
            "The outcome of an async task, exactly as the synchronous call would have answered. While "
            "the task is running it answers status running; call again later."
        ),
        "inputSchema": _obj(
            {"task_id": {"type": "string", "minLength": 1, "description": "From the async call."}},
            ("task_id",),
        ),
        "outputSchema": _obj(
            {
                "task_id": {"type": "string"},
                "status": _STATUS_OUT,
                "result": {"type": "object"},
            },
            ("task_id", "status"),
            extra=True,
        ),
        "annotations": {**_READ_ONLY, "title": "Get a task's result"},
    },
    {
        "name": "artifact.get",
        "title": "Get an artifact",
        "description": (
            "Fetch a file that code wrote under the workspace's artifacts/ directory (plots, reports, data), "
            "base64-encoded with its MIME type. Images also come back as image content."
        ),
        "inputSchema": _obj(
            {
                "session_id": SESSION_ID,
                "path": {
                    "type": "string",
                    "minLength": 1,
                    "description": "Path relative to artifacts/, e.g. plot.png.",
                },
            },
            ("path",),
        ),
        "outputSchema": _obj(
            {
                "session_id": _SID_OUT,
                "path": {"type": "string"},
                "content": {"type": "string"},
                "size": {"type": "integer"},
                "mime_type": {"type": "string"},
            },
            ("session_id", "path", "content"),
            extra=True,
        ),
        "annotations": {**_READ_ONLY, "title": "Get an artifact"},
    },
]
"""Every tool, in the order tools/list shows them."""
