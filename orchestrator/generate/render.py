"""The printer: jinja2 environment, and the Chain -> {path: text} rendering of steps/.

Templates emit upstream strings only through the filters of ``nixstr`` (``nix_str``,
``nix_attr``, ``nix``, ``nix_comment``); ``StrictUndefined`` turns a typo into an error.
"""

from __future__ import annotations

import hashlib
import json

import jinja2

from orchestrator import __version__
from orchestrator.nixstr import FILTERS
from orchestrator.upstream.chain import Chain
from orchestrator.upstream.tree import SNAPSHOT_FILE, SourceTree, snapshot_of

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("orchestrator", "templates"),
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
    trim_blocks=False,
    lstrip_blocks=False,
)
_env.filters.update(FILTERS)


def template(name: str) -> jinja2.Template:
    return _env.get_template(name)


def upstream_inputs(tree: SourceTree, chain: Chain) -> list[tuple[str, str]]:
    """Every upstream file the chain was derived from, with its sha256 (sorted by path)."""
    paths = {"steps/manifest", "steps/env", "steps/SHA256SUMS.pkgs"}
    for e in chain.manifest.entries:
        if e.kind == "build" and tree.has_content(f"steps/{e.arg}/sources"):
            paths.add(f"steps/{e.arg}/sources")
    for s in chain.steps:
        if s.checksums_file and tree.has_content(s.checksums_file):
            paths.add(s.checksums_file)
    out = []
    for p in sorted(paths):
        if tree.has_content(p):
            out.append((p, hashlib.sha256(tree.read_bytes(p)).hexdigest()))
    return out


def render_steps(tree: SourceTree, chain: Chain) -> dict[str, str]:
    """Relative path under steps/ -> file text, for every file the chain generator owns."""
    common = {"commit": chain.commit, "profile": chain.profile}
    files: dict[str, str] = {}
    step_t = template("step.nix.j2")
    for s in chain.steps:
        distfiles = [chain.distfile(name) for name in s.distfiles]
        files[f"{s.step.attr_name}.nix"] = step_t.render(
            s=s, distfiles=distfiles, override=s.override, **common
        )
    files["default.nix"] = template("index.nix.j2").render(steps=chain.steps, **common)
    used = sorted({name for s in chain.steps for name in s.distfiles})
    files["distfiles.nix"] = template("distfiles.nix.j2").render(
        distfiles=[chain.distfile(name) for name in used], **common
    )
    inputs = upstream_inputs(tree, chain)
    files["meta.nix"] = template("meta.nix.j2").render(
        arch=chain.arch,
        generator=f"orchestrator {__version__}",
        config=chain.plan.final_config,
        inputs=inputs,
        **common,
    )
    # The data the chain was derived from, for read-only commands on a fresh clone.
    snapshot = snapshot_of(tree, [p for p, _ in inputs])
    files[SNAPSHOT_FILE] = json.dumps(snapshot.model_dump(), indent=1, sort_keys=True) + "\n"
    return files
