"""What differs between two unpacked store paths: diffoscope when installed, else a built-in
report (which files differ, their sizes, the first differing byte)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field


class FileDiff(BaseModel):
    """One difference between two unpacked trees (built-in diff)."""

    path: str  # relative to the store path; "" is the top
    change: Literal["only-ours", "only-theirs", "type", "executable", "symlink-target", "content"]
    ours_size: int | None = None
    theirs_size: int | None = None
    first_difference: int | None = None  # byte offset of the first differing byte
    detail: str | None = None


class DiffReport(BaseModel):
    tool: Literal["builtin", "diffoscope"]
    files: list[FileDiff] = Field(default_factory=list)
    truncated: bool = False
    output: str | None = None  # diffoscope's text report (cut at 64 KiB)
    html: str | None = None  # diffoscope's HTML report (a whole page; None when over 4 MiB)
    error: str | None = None


_MAX_FILE_DIFFS = 200
_MAX_HTML = 4 << 20  # a diffoscope page larger than this is left out of the report page


def _first_difference(a: Path, b: Path) -> int | None:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        offset = 0
        while True:
            ca, cb = fa.read(1 << 20), fb.read(1 << 20)
            if ca != cb:
                n = min(len(ca), len(cb))
                for i in range(n):
                    if ca[i] != cb[i]:
                        return offset + i
                return offset + n
            if not ca:
                return None
            offset += len(ca)


def diff_trees(ours: Path, theirs: Path) -> DiffReport:
    """Which files differ between two unpacked store paths, with sizes and first offsets."""
    files: list[FileDiff] = []

    def kind(p: Path) -> str | None:
        try:
            mode = os.lstat(p).st_mode
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(mode):
            return "symlink"
        if stat.S_ISDIR(mode):
            return "directory"
        return "regular"

    def visit(rel: str) -> list[str]:
        """Record how ``rel`` differs; the children to visit next when both are directories."""
        a, b = ours / rel if rel else ours, theirs / rel if rel else theirs
        ka, kb = kind(a), kind(b)
        if ka is None or kb is None:
            p = b if ka is None else a
            size = os.lstat(p).st_size if kind(p) == "regular" else None
            change: Literal["only-ours", "only-theirs"] = (
                "only-theirs" if ka is None else "only-ours"
            )
            files.append(
                FileDiff(
                    path=rel,
                    change=change,
                    ours_size=size if ka else None,
                    theirs_size=size if kb else None,
                    detail=(ka or kb),
                )
            )
            return []
        if ka != kb:
            files.append(FileDiff(path=rel, change="type", detail=f"{ka} vs {kb}"))
            return []
        if ka == "symlink":
            ta, tb = os.readlink(a), os.readlink(b)
            if ta != tb:
                files.append(FileDiff(path=rel, change="symlink-target", detail=f"{ta} vs {tb}"))
        elif ka == "regular":
            sa, sb = os.lstat(a), os.lstat(b)
            if bool(sa.st_mode & stat.S_IXUSR) != bool(sb.st_mode & stat.S_IXUSR):
                files.append(FileDiff(path=rel, change="executable"))
            first = _first_difference(a, b)
            if first is not None:
                files.append(
                    FileDiff(
                        path=rel,
                        change="content",
                        ours_size=sa.st_size,
                        theirs_size=sb.st_size,
                        first_difference=first,
                    )
                )
        else:
            names = sorted(set(os.listdir(a)) | set(os.listdir(b)))
            return [f"{rel}/{n}" if rel else n for n in names]
        return []

    # depth first in name order, with a stack: a tree of any depth, no recursion
    todo = [""]
    while todo:
        todo.extend(reversed(visit(todo.pop())))

    truncated = len(files) > _MAX_FILE_DIFFS
    return DiffReport(tool="builtin", files=files[:_MAX_FILE_DIFFS], truncated=truncated)


def run_diff(ours: Path, theirs: Path, *, tool: str = "auto") -> DiffReport:
    """Diffoscope when installed (and ``tool`` allows), else the built-in report."""
    builtin = diff_trees(ours, theirs)
    exe = shutil.which("diffoscope") if tool in ("auto", "diffoscope") else None
    if exe is None:
        return builtin
    # one run, two reports: the text for the table and --json, the HTML for verify --html
    # (diffoscope's --html page uses no JavaScript and loads nothing)
    fd, name = tempfile.mkstemp(prefix="orchestrator-diffoscope-", suffix=".html")
    os.close(fd)
    html_file = Path(name)
    try:
        proc = subprocess.run(
            [exe, "--no-progress", "--text", "-", "--html", str(html_file), str(ours), str(theirs)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        html = _read_html(html_file)
    except (OSError, subprocess.TimeoutExpired) as exc:
        builtin.error = f"diffoscope failed: {exc}"
        return builtin
    finally:
        html_file.unlink(missing_ok=True)
    text = proc.stdout
    if len(text) > 65536:
        text = text[:65536] + "\n[... cut at 64 KiB]\n"
    return DiffReport(
        tool="diffoscope", files=builtin.files, truncated=builtin.truncated, output=text, html=html
    )


def _read_html(path: Path) -> str | None:
    try:
        if path.stat().st_size > _MAX_HTML:
            return None
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
