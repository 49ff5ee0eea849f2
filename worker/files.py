"""The file operations of a workspace: fs.read, fs.write, fs.list and artifact.get (blocking calls)."""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import mimetypes
import os
import secrets
import stat
from dataclasses import dataclass
from typing import Any

from worker.errors import WorkerError, invalid
from worker.workspace import Workspace, climbs_out, open_dir, open_final, outside, split_path

ARTIFACTS_DIR = "artifacts"
HIDDEN = frozenset({".tmp"})  # run.python's TMPDIR: worker machinery, left out of fs.list


@dataclass(frozen=True, slots=True)
class OpenedRead:
    """A file opened for fs.read: its fd (owned by the holder), size and the byte range to return."""

    fd: int
    path: str
    size: int
    offset: int
    length: int


def open_for_read(ws: Workspace, path: str, offset: int, limit: int) -> OpenedRead:
    """Open a regular file for reading `limit` bytes from `offset` (clamped to its size)."""
    resolved = ws.resolve(path)
    try:
        fd = open_final(resolved, os.O_RDONLY | os.O_NONBLOCK, path)
    finally:
        resolved.close()
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise invalid(f"path {path!r} is a directory; use fs.list")
        if not stat.S_ISREG(st.st_mode):
            raise invalid(f"path {path!r} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    start = min(offset, st.st_size)
    return OpenedRead(fd, resolved.rel, st.st_size, start, max(0, min(limit, st.st_size - start)))


def finish_read(opened: OpenedRead) -> dict[str, Any]:
    """Read the range of `opened`, close it, and build the fs.read answer."""
    try:
        data = os.pread(opened.fd, opened.length, opened.offset) if opened.length else b""
    finally:
        os.close(opened.fd)
    eof = opened.offset + len(data) >= opened.size
    content, encoding, data = _as_text(data, eof)
    return {
        "path": opened.path,
        "content": content,
        "encoding": encoding,
        "size": opened.size,
        "offset": opened.offset,
        "length": len(data),
        "eof": opened.offset + len(data) >= opened.size,
    }


def _as_text(data: bytes, eof: bool) -> tuple[str, str, bytes]:
    """(content, encoding, bytes covered): UTF-8 text when the bytes decode, else base64."""
    if b"\x00" not in data:
        try:
            return data.decode("utf-8"), "utf-8", data
        except UnicodeDecodeError as exc:
            # A page boundary may cut a multi-byte character: return the text up to it.
            cut = exc.reason == "unexpected end of data" and max(1, len(data) - 3) <= exc.start
            if cut and not eof:
                head = data[: exc.start]
                try:
                    return head.decode("utf-8"), "utf-8", head
                except UnicodeDecodeError:
                    pass
    return base64.b64encode(data).decode("ascii"), "base64", data


def decode_content(content: object, encoding: object) -> bytes:
    """The bytes fs.write should store for `content` given in `encoding` ('utf-8' or 'base64')."""
    if not isinstance(content, str):
        raise invalid(f"content must be a string, got {type(content).__name__}")
    if encoding == "utf-8":
        return content.encode("utf-8", errors="surrogatepass")
    if encoding == "base64":
        try:
            return base64.b64decode(content, validate=True)
        except ValueError:
            raise invalid("content is not valid base64 (encoding is 'base64')") from None
    raise invalid(f"encoding {encoding!r} is not supported; allowed: 'utf-8', 'base64'")


def count_files(ws: Workspace, stop_at: int) -> int:
    """How many non-directory entries the workspace holds, counting no further than `stop_at`."""
    root = ws.open_root()
    count = 0
    try:
        for _dirpath, _dirs, names, _fd in os.fwalk(".", dir_fd=root, follow_symlinks=False):
            count += len(names)
            if count >= stop_at:
                break
    finally:
        os.close(root)
    return count


def write_file(
    ws: Workspace, path: str, data: bytes, *, append: bool, max_bytes: int, max_files: int
) -> dict[str, Any]:
    """Write `data` atomically (temp file in the same directory, then rename), creating parents."""
    if not split_path(path):
        raise invalid(f"path {path!r} names the workspace root; give a file name")
    if path.endswith("/"):
        # POSIX would refuse `name/` as a file; writing a file called `name` would surprise the caller.
        raise invalid(
            f"path {path!r} ends with '/', which names a directory; give a file path such as '{path}file.txt'"
        )
    resolved = ws.resolve(path, create_parents=True)
    try:
        if resolved.name is None:
            raise invalid(f"path {path!r} is a directory")
        pfd, name = resolved.parent_fd, resolved.name
        try:
            existing: os.stat_result | None = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if existing is not None and stat.S_ISDIR(existing.st_mode):
            raise invalid(f"path {path!r} is a directory")
        if existing is not None and stat.S_ISLNK(existing.st_mode):
            raise outside(path, "it became a symlink during the operation")
        if existing is not None and not stat.S_ISREG(existing.st_mode):
            raise invalid(f"path {path!r} is not a regular file")
        written = len(data)
        if append and existing is not None:
            fd = open_final(resolved, os.O_RDONLY, path)
            try:
                size = os.fstat(fd).st_size
                if size + len(data) > max_bytes:
                    raise _too_large(path, size + len(data), max_bytes)
                data = os.pread(fd, size, 0) + data
            finally:
                os.close(fd)
        if len(data) > max_bytes:
            raise _too_large(path, len(data), max_bytes)
        if existing is None and count_files(ws, max_files) >= max_files:
            raise WorkerError(
                "too_large",
                f"the workspace already holds {max_files} files (limits.max_files); delete some first "
                "(there is no delete tool: run.python with os.remove or shutil.rmtree)",
            )
        _replace(pfd, name, data, existing.st_mode & 0o7777 if existing else 0o644)
        return {"path": resolved.rel, "bytes_written": written, "size": len(data)}
    finally:
        resolved.close()


def _too_large(path: str, size: int, limit: int) -> WorkerError:
    return WorkerError("too_large", f"path {path!r} would be {size} bytes; limits.max_file_bytes allows {limit}")


def _replace(dir_fd: int, name: str, data: bytes, mode: int) -> None:
    tmp = f".{name[:200]}.tmp-{secrets.token_hex(6)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise


def _entry(rel: str, st: os.stat_result) -> dict[str, Any]:
    mode = st.st_mode
    kind = (
        "symlink" if stat.S_ISLNK(mode) else "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"
    )
    return {"path": rel, "type": kind, "size": st.st_size, "mtime": st.st_mtime}


def _matches(rel: str, name: str, pattern: str | None) -> bool:
    if pattern is None:
        return True
    if fnmatch.fnmatchcase(rel, pattern):
        return True
    # `**/` also matches no directory at all, as in pathlib and .gitignore: `**/*.csv` matches `top.csv`.
    if "**/" in pattern and fnmatch.fnmatchcase(rel, pattern.replace("**/", "")):
        return True
    return "/" not in pattern and fnmatch.fnmatchcase(name, pattern)


def list_dir(ws: Workspace, path: str, *, recursive: bool, glob: str | None, max_entries: int) -> dict[str, Any]:
    """The entries under a directory, sorted by path; paths are relative to the workspace root.

    A glob with `**` lists recursively even without `recursive`: a model asking for `**/*.csv` wants them all.
    """
    recursive = recursive or (glob is not None and "**" in glob)
    resolved = ws.resolve(path)
    try:
        dfd = open_dir(resolved, path)
    finally:
        resolved.close()
    base = "" if not resolved.parts else "/".join(resolved.parts) + "/"
    entries: list[dict[str, Any]] = []
    truncated = False
    try:
        if recursive:
            for dirpath, dirs, names, fd in os.fwalk(".", dir_fd=dfd, follow_symlinks=False):
                prefix = base + ("" if dirpath == "." else dirpath[2:] + "/")
                if not prefix:
                    dirs[:] = [d for d in dirs if d not in HIDDEN]
                for name in (*dirs, *names):
                    if len(entries) >= max_entries:
                        truncated = True
                        break
                    try:
                        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    if prefix + name not in HIDDEN and _matches(prefix + name, name, glob):
                        entries.append(_entry(prefix + name, st))
                if truncated:
                    break
        else:
            with os.scandir(dfd) as it:
                for item in it:
                    if len(entries) >= max_entries:
                        truncated = True
                        break
                    try:
                        st = item.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    if base + item.name not in HIDDEN and _matches(base + item.name, item.name, glob):
                        entries.append(_entry(base + item.name, st))
    finally:
        os.close(dfd)
    entries.sort(key=lambda e: str(e["path"]))
    return {"path": resolved.rel, "entries": entries, "truncated": truncated}


def get_artifact(ws: Workspace, path: str, max_bytes: int) -> dict[str, Any]:
    """A file under the workspace's artifacts/ directory, base64-encoded."""
    parts = split_path(path)
    if not parts:
        raise invalid(f"path {path!r} names artifacts/ itself; give a file under it")
    escape = WorkerError("path_outside_workspace", f"artifact path {path!r} leads outside {ARTIFACTS_DIR}/")
    if climbs_out(parts):
        raise escape
    full = f"{ARTIFACTS_DIR}/{path}"
    resolved = ws.resolve(full)
    try:
        if len(resolved.parts) < 2 or resolved.parts[0] != ARTIFACTS_DIR:
            raise escape
        fd = open_final(resolved, os.O_RDONLY | os.O_NONBLOCK, full)
    finally:
        resolved.close()
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise invalid(f"artifact {path!r} is not a regular file")
        if st.st_size > max_bytes:
            raise WorkerError(
                "too_large",
                f"artifact {path!r} is {st.st_size} bytes; limits.max_artifact_bytes allows {max_bytes}",
            )
        data = os.pread(fd, st.st_size, 0)
    finally:
        os.close(fd)
    rel = "/".join(resolved.parts[1:])
    mime = mimetypes.guess_type(rel)[0] or "application/octet-stream"
    return {
        "path": rel,
        "content": base64.b64encode(data).decode("ascii"),
        "size": len(data),
        "mime_type": mime,
    }
