"""Safe path resolution inside one workspace: every component is opened through directory fds.

The kernel never follows a symlink for us. Each component is opened with
`O_NOFOLLOW | O_DIRECTORY` relative to the fd of its parent; a symlink met on the way is read with
`readlink` and its target is walked the same way, so a symlink (or a directory swapped for one
mid-operation) can never lead outside the workspace. Callers open the final component with
`O_NOFOLLOW` relative to `Resolved.parent_fd`.

Limit: a process of the same uid can still rename a directory we hold open to a place outside the
workspace; only per-session uids or mount namespaces close that gap.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from worker.errors import WorkerError, invalid

O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_SYMLINK_HOPS = 40
MAX_PATH_CHARS = 4096
MAX_RETRIES = 8


def outside(path: str, why: str = "") -> WorkerError:
    """A `path_outside_workspace` error for `path`."""
    tail = f" ({why})" if why else ""
    return WorkerError(
        "path_outside_workspace",
        f"path {path!r} resolves outside the workspace{tail}; give a path relative to the workspace root",
    )


def split_path(path: object, field: str = "path") -> list[str]:
    """The components of a workspace-relative path; refuses absolute paths, NUL bytes and non-strings."""
    if not isinstance(path, str):
        raise invalid(f"{field} must be a string, got {type(path).__name__}")
    if "\x00" in path:
        raise invalid(f"{field} {path!r} contains a NUL byte")
    if len(path) > MAX_PATH_CHARS:
        raise invalid(f"{field} is {len(path)} characters long; at most {MAX_PATH_CHARS} are allowed")
    if path.startswith("/"):
        raise WorkerError(
            "path_outside_workspace",
            f"{field} {path!r} is absolute; give a path relative to the workspace root",
        )
    return [part for part in path.split("/") if part not in ("", ".")]


def climbs_out(parts: list[str]) -> bool:
    """True when `..` components climb above the start, read lexically (before any symlink)."""
    depth = 0
    for part in parts:
        depth += -1 if part == ".." else 1
        if depth < 0:
            return True
    return False


@dataclass(frozen=True, slots=True)
class Resolved:
    """A resolved path: the open fd of its parent directory and its final name.

    `name` is None when the path is a directory reached through `..` or the root itself; then
    `parent_fd` is that directory. `parts` is the logical path from the workspace root with
    symlinks resolved. The caller owns `parent_fd` and must close it.
    """

    parent_fd: int
    name: str | None
    parts: tuple[str, ...]

    @property
    def rel(self) -> str:
        """The resolved path relative to the workspace root ('.' for the root)."""
        return "/".join(self.parts) or "."

    def close(self) -> None:
        """Close `parent_fd`."""
        os.close(self.parent_fd)


@dataclass(frozen=True, slots=True)
class Workspace:
    """One session's directory. `root` is absolute and free of symlinks."""

    root: Path

    def open_root(self) -> int:
        """An fd of the workspace directory itself (refused when it was replaced by a symlink)."""
        try:
            return os.open(self.root, O_DIR)
        except FileNotFoundError:
            raise WorkerError("session_not_found", f"the workspace {self.root.name!r} no longer exists") from None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise outside(".", "the workspace directory was replaced") from None
            raise

    def resolve(self, path: str, *, create_parents: bool = False, field: str = "path") -> Resolved:
        """Walk `path` from the workspace root, following symlinks only while they stay inside.

        Missing parent directories are created when `create_parents` is set, else reported as
        `not_found`. A final component that is a symlink is followed the same safe way; a final
        component that does not exist is returned as is.
        """
        parts = split_path(path, field)
        if climbs_out(parts):
            raise outside(path)
        pending: deque[str] = deque(parts)
        fds = [self.open_root()]
        names: list[str] = []
        hops = retries = 0
        try:
            while pending:
                name = pending.popleft()
                if name in ("", "."):
                    continue
                if name == "..":
                    if not names:
                        raise outside(path)
                    os.close(fds.pop())
                    names.pop()
                    continue
                if not pending:
                    target = self._final_symlink(fds[-1], name)
                    if target is None:
                        resolved = Resolved(fds.pop(), name, (*names, name))
                        return resolved
                    hops = self._follow(path, target, hops, pending=pending, fds=fds, names=names)
                    continue
                try:
                    fd = os.open(name, O_DIR, dir_fd=fds[-1])
                except FileNotFoundError:
                    if not create_parents:
                        missing = "/".join((*names, name))
                        raise WorkerError(
                            "not_found", f"path {path!r} does not exist: no directory {missing!r}"
                        ) from None
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(name, 0o755, dir_fd=fds[-1])
                    pending.appendleft(name)
                    continue
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    try:
                        target = os.readlink(name, dir_fd=fds[-1])
                    except OSError:
                        # Not a symlink (any more): a file, or it changed under us; look again, boundedly.
                        retries += 1
                        if retries > MAX_RETRIES or _is_file(fds[-1], name):
                            where = "/".join((*names, name))
                            raise invalid(f"path {path!r}: {where!r} is not a directory") from None
                        pending.appendleft(name)
                        continue
                    hops = self._follow(path, target, hops, pending=pending, fds=fds, names=names)
                    continue
                fds.append(fd)
                names.append(name)
            return Resolved(fds.pop(), None, tuple(names))
        finally:
            for fd in fds:
                os.close(fd)

    @staticmethod
    def _final_symlink(dir_fd: int, name: str) -> str | None:
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if not stat.S_ISLNK(st.st_mode):
            return None
        try:
            return os.readlink(name, dir_fd=dir_fd)
        except OSError:
            return None

    def _follow(
        self, path: str, target: str, hops: int, *, pending: deque[str], fds: list[int], names: list[str]
    ) -> int:
        hops += 1
        if hops > MAX_SYMLINK_HOPS:
            raise invalid(f"path {path!r} has more than {MAX_SYMLINK_HOPS} symlinks in a row (a loop?)")
        if target.startswith("/"):
            root = str(self.root)
            if target != root and not target.startswith(root + "/"):
                raise outside(path, f"a symlink points to {target!r}")
            target = target[len(root) :]
            while len(fds) > 1:
                os.close(fds.pop())
            names.clear()
        pending.extendleft(reversed(target.split("/")))
        return hops


def _is_file(dir_fd: int, name: str) -> bool:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return not stat.S_ISDIR(st.st_mode) and not stat.S_ISLNK(st.st_mode)


def open_final(resolved: Resolved, flags: int, path: str, mode: int = 0o644) -> int:
    """Open `resolved`'s final component with O_NOFOLLOW; errors come back as WorkerError."""
    if resolved.name is None:
        raise invalid(f"path {path!r} is a directory")
    try:
        return os.open(resolved.name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=resolved.parent_fd)
    except FileNotFoundError:
        raise WorkerError("not_found", f"path {path!r} does not exist") from None
    except IsADirectoryError:
        raise invalid(f"path {path!r} is a directory") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise outside(path, "it became a symlink during the operation") from None
        raise


def open_dir(resolved: Resolved, path: str) -> int:
    """An fd of the directory `resolved` names (its own fd, never the parent's)."""
    if resolved.name is None:
        return os.dup(resolved.parent_fd)
    try:
        return os.open(resolved.name, O_DIR, dir_fd=resolved.parent_fd)
    except FileNotFoundError:
        raise WorkerError("not_found", f"path {path!r} does not exist") from None
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            raise invalid(f"path {path!r} is not a directory") from None
        if exc.errno == errno.ELOOP:
            raise outside(path, "it became a symlink during the operation") from None
        raise
