"""The one resolver of a path inside a root (a live-bootstrap tree, a step output, a store path).

Symlinks are followed the way the kernel would, but only inside the root: a ``..`` that would
climb above the root is refused (never clamped), and so is a link loop (more than
``MAX_LINKS`` links in one lookup). An absolute link target is either refused (an upstream
tree, a Hydra output: such a link names a file of this machine) or, for a step output that
is a root filesystem, read as the chroot would read it: from the root again. Iterative: no
recursion on the depth of the path or of the links.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

MAX_LINKS = 40  # the kernel's limit on symlinks followed in one lookup (MAXSYMLINKS)

Absolute = Literal["refuse", "chroot"]


class OutsideRoot(ValueError):
    """The path, or a link on the way, leads out of the root."""

    def __init__(self, path: str, link: str | None = None, target: str | None = None) -> None:
        self.path, self.link, self.target = path, link, target
        what = f"symlink {link} -> {target}" if link else f"path {path!r}"
        super().__init__(f"{what} leads out of the root")


class LinkLoop(ValueError):
    """More than ``MAX_LINKS`` symlinks in one lookup: a cycle."""

    def __init__(self, path: str, link: str, target: str) -> None:
        self.path, self.link, self.target = path, link, target
        super().__init__(
            f"symlink cycle: resolving {path} follows more than {MAX_LINKS} links "
            f"(at {link} -> {target})"
        )


def plain_parts(path: str) -> list[str] | None:
    """The components of a plain relative path (``a/b``; ``""`` is the root itself), or None
    when a component is empty, ``.`` or ``..``, or the path holds a NUL."""
    if path == "":
        return []
    if "\0" in path:
        return None
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return None
    return parts


def resolve_in_root(
    path: str,
    read_link: Callable[[str], str | None],
    *,
    absolute: Absolute = "refuse",
    follow: bool = True,
    start: Sequence[str] = (),
) -> str:
    """``path`` (relative to the root; leading/trailing ``/`` ignored) with its symlinks
    followed inside the root, as a ``/``-joined relative path (``""`` for the root).

    ``read_link(rel)`` answers the target of ``rel`` if it is a symlink, else None. The last
    component is followed only when ``follow``. ``start``: the already resolved components
    ``path`` continues from (a cache of parents). Raises OutsideRoot or LinkLoop."""
    done: list[str] = list(start)
    todo = path.strip("/").split("/") if path.strip("/") else []
    todo.reverse()  # a stack: the next component last
    hops = 0
    while todo:
        part = todo.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not done:
                raise OutsideRoot(path)
            done.pop()
            continue
        here = "/".join((*done, part))
        target = read_link(here) if (todo or follow) else None
        if target is None:
            done.append(part)
            continue
        hops += 1
        if hops > MAX_LINKS:
            raise LinkLoop(path, here, target)
        if target.startswith("/"):
            if absolute == "refuse":
                raise OutsideRoot(path, here, target)
            done = []
        todo.extend(reversed(target.split("/")))
    return "/".join(done)
