"""Workspace path resolution on a real directory tree: refusals, symlinks that stay inside, `..foo` names."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from worker.errors import WorkerError
from worker.files import finish_read, list_dir, open_for_read, write_file
from worker.workspace import Workspace, climbs_out, split_path


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("s")
    return Workspace(root.resolve())


def _code(exc: pytest.ExceptionInfo[WorkerError]) -> str:
    return exc.value.code


def test_split_refuses_absolute_nul_and_non_strings() -> None:
    """Absolute paths are outside; NUL bytes and non-strings are invalid."""
    with pytest.raises(WorkerError) as info:
        split_path("/etc")
    assert _code(info) == "path_outside_workspace"
    for bad in ("a\x00b", 5):
        with pytest.raises(WorkerError) as info:
            split_path(bad)
        assert _code(info) == "invalid_argument"
    assert split_path("./a//b/") == ["a", "b"]


def test_lexical_climb_is_detected() -> None:
    """`a/../..` climbs out; `a/..`, `..foo` and `...` do not."""
    assert climbs_out(["a", "..", ".."])
    assert not climbs_out(["a", ".."])
    assert not climbs_out(["..foo", "..."])


def test_resolve_returns_parent_fd_and_logical_parts(ws: Workspace) -> None:
    """A nested path resolves to its parent directory fd and its name."""
    (ws.root / "a" / "b").mkdir(parents=True)
    resolved = ws.resolve("a/./b/../b/c.txt")
    try:
        assert resolved.name == "c.txt"
        assert resolved.parts == ("a", "b", "c.txt")
        assert os.path.samestat(os.fstat(resolved.parent_fd), os.stat(ws.root / "a" / "b"))
    finally:
        resolved.close()


def test_symlink_chain_inside_resolves_to_its_target(ws: Workspace) -> None:
    """Relative and absolute in-workspace symlinks, chained, land on the real path."""
    (ws.root / "real").mkdir()
    os.symlink("real", ws.root / "hop1")
    os.symlink(str(ws.root / "hop1"), ws.root / "hop2")
    resolved = ws.resolve("hop2/file")
    resolved.close()
    assert resolved.parts == ("real", "file")


def test_symlink_outside_is_refused_for_parent_and_final_components(ws: Workspace, tmp_path: Path) -> None:
    """Both `link/secret` and a final `link` that leaves the workspace are refused."""
    os.symlink(tmp_path / "outside", ws.root / "dir_link")
    os.symlink(tmp_path / "outside" / "secret", ws.root / "file_link")
    for path in ("dir_link/secret", "file_link"):
        with pytest.raises(WorkerError) as info:
            ws.resolve(path)
        assert _code(info) == "path_outside_workspace", path


def test_workspace_root_replaced_by_a_symlink_is_refused(tmp_path: Path) -> None:
    """If the session directory itself became a symlink, nothing is opened through it."""
    os.symlink(tmp_path, tmp_path / "ws_link")
    with pytest.raises(WorkerError) as info:
        Workspace(tmp_path / "ws_link").resolve("x")
    assert _code(info) == "path_outside_workspace"


def test_write_preserves_mode_and_list_hides_tmp(ws: Workspace) -> None:
    """Overwriting keeps an executable bit; the run TMPDIR .tmp is not listed."""
    write_file(ws, "run.sh", b"#!/bin/sh\n", append=False, max_bytes=100, max_files=10)
    os.chmod(ws.root / "run.sh", 0o755)
    write_file(ws, "run.sh", b"#!/bin/sh\necho\n", append=False, max_bytes=100, max_files=10)
    assert (ws.root / "run.sh").stat().st_mode & 0o777 == 0o755
    (ws.root / ".tmp").mkdir()
    assert [e["path"] for e in list_dir(ws, ".", recursive=True, glob=None, max_entries=10)["entries"]] == ["run.sh"]


def test_read_page_that_cuts_a_multibyte_character_stays_text(ws: Workspace) -> None:
    """A page ending inside 'é' returns the text before it; the next page starts at that byte."""
    write_file(ws, "t.txt", "aé".encode() * 3, append=False, max_bytes=100, max_files=10)
    first = finish_read(open_for_read(ws, "t.txt", 0, 2))
    assert (first["content"], first["encoding"], first["length"], first["eof"]) == ("a", "utf-8", 1, False)
    rest = finish_read(open_for_read(ws, "t.txt", first["length"], 100))
    assert (rest["content"], rest["eof"]) == ("éaéaé", True)
