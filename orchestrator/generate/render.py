"""The printer: jinja2 environment, and the Chain -> {path: text} rendering of steps/.

Templates emit values only through the filters of ``nixstr`` (``nix_str``, ``nix_attr``, ``nix``,
``nix_comment``, ``nix_path_segment``), and this is enforced, not a convention: the environment's
``finalize`` hook lets through only ``NixText`` (what those filters return) and refuses anything
else -- a raw string, an int, a filter result concatenated with text -- so a template that
interpolates a value unquoted fails to render. A macro's output is plain text too, so share
template code with ``{% include %}``. ``StrictUndefined`` turns a typo into an error.
"""

from __future__ import annotations

import hashlib
import json

import jinja2

from orchestrator import __version__
from orchestrator.errors import GenerateError
from orchestrator.nixstr import FILTERS, NixText, nix_string, path_segment
from orchestrator.upstream.chain import Chain, Distfile, files_of_every_profile
from orchestrator.upstream.tree import SNAPSHOT_FILE, SourceTree, snapshot_of

MANIFEST = "steps/manifest"


@jinja2.pass_context
def only_nix_text(context: jinja2.runtime.Context, value: object) -> NixText:
    """``finalize``: every ``{{ ... }}`` must end in a nixstr filter."""
    if type(value) is NixText:
        return value
    if isinstance(value, jinja2.Undefined):
        str(value)  # StrictUndefined names the missing variable
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    raise GenerateError(
        f"template {context.name}: {{{{ ... }}}} produced {type(value).__name__} {shown}, "
        "not the output of a nixstr filter",
        hint="end the expression with | nix_str, | nix_attr, | nix, | nix_comment or "
        "| nix_path_segment",
    )


def environment(loader: jinja2.BaseLoader) -> jinja2.Environment:
    """The one template environment (tests build one over their own templates)."""
    env = jinja2.Environment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        finalize=only_nix_text,
        keep_trailing_newline=True,
        trim_blocks=False,
        lstrip_blocks=False,
    )
    env.filters.update(FILTERS)
    return env


_env = environment(jinja2.PackageLoader("orchestrator", "templates"))


def template(name: str) -> jinja2.Template:
    return _env.get_template(name)


def step_file(attr_name: str) -> str:
    """The file of a step under steps/: its attribute name, checked as one path segment."""
    return path_segment(attr_name) + ".nix"


def upstream_inputs(tree: SourceTree, chain: Chain) -> list[tuple[str, str]]:
    """Every upstream file the chain was derived from, with its sha256 (sorted by path)."""
    paths = {MANIFEST, "steps/env", "steps/SHA256SUMS.pkgs"}
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


def _at_sources_line(
    exc: GenerateError, distfiles: list[Distfile], tree: SourceTree
) -> GenerateError:
    """``exc`` located at the sources line of the first distfile Nix cannot hold."""
    for d in distfiles:
        for value in (d.filename, d.sha256, *d.urls, d.git_repo or "", d.git_ref or ""):
            try:
                nix_string(value)
            except GenerateError:
                path, _, line = d.origins[0].rpartition(":") if d.origins else ("", "", "")
                return GenerateError(
                    f"distfile {d.filename!r}: {exc.message}",
                    file=tree.root / path if path else None,
                    line=int(line) if line.isdigit() else None,
                    hint=exc.hint,
                )
    return exc


def render_steps(tree: SourceTree, chain: Chain) -> dict[str, str]:
    """Relative path under steps/ -> file text, for every file the chain generator owns."""
    common = {"commit": chain.commit, "profile": chain.profile}
    files: dict[str, str] = {}
    step_t = template("step.nix.j2")
    # Distfiles first: a value Nix cannot hold is reported at its sources line, not at a step.
    used = sorted({name for s in chain.steps for name in s.distfiles})
    distfiles = [chain.distfile(name) for name in used]
    try:
        distfiles_text = template("distfiles.nix.j2").render(distfiles=distfiles, **common)
    except GenerateError as exc:
        raise _at_sources_line(exc, distfiles, tree) from None
    for s in chain.steps:
        distfiles = [chain.distfile(name) for name in s.distfiles]
        try:
            files[step_file(s.step.attr_name)] = step_t.render(
                s=s, distfiles=distfiles, override=s.override, **common
            )
        except GenerateError as exc:
            raise GenerateError(
                f"step {s.step.attr_name!r}: {exc.message}",
                file=tree.root / MANIFEST,
                line=s.step.line,
                hint=exc.hint,
            ) from None
    files["default.nix"] = template("index.nix.j2").render(steps=chain.steps, **common)
    files["distfiles.nix"] = distfiles_text
    inputs = upstream_inputs(tree, chain)
    files["meta.nix"] = template("meta.nix.j2").render(
        arch=chain.arch,
        generator=f"orchestrator {__version__}",
        config=chain.plan.final_config,
        inputs=inputs,
        **common,
    )
    # The data the chain was derived from, for read-only commands on a fresh clone.
    snapshot = snapshot_of(tree, [p for p, _ in inputs] + files_of_every_profile(tree))
    files[SNAPSHOT_FILE] = json.dumps(snapshot.model_dump(), indent=1, sort_keys=True) + "\n"
    return files
