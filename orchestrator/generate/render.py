"""The printer: jinja2 environment, and the Chain -> {path: text} rendering of steps/.

Templates emit values only through the filters of ``nixstr`` (``nix_str``, ``nix_attr``, ``nix``,
``nix_comment``, ``nix_path_segment``), and this is enforced, not a convention: the environment's
``finalize`` hook lets through only ``NixText`` (what those filters return) and refuses anything
else -- a raw string, an int, a filter result concatenated with text -- so a template that
interpolates a value unquoted fails to render. A macro's output is plain text too, so share
template code with ``{% include %}``. ``StrictUndefined`` turns a typo into an error.
"""

from __future__ import annotations

import json

import jinja2

from orchestrator import __version__
from orchestrator.errors import GenerateError
from orchestrator.nixstr import FILTERS, NixText, path_segment
from orchestrator.upstream.chain import Chain
from orchestrator.upstream.tree import SNAPSHOT_FILE


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


def render_steps(chain: Chain) -> dict[str, str]:
    """Relative path under steps/ -> file text, for every file the chain generator owns.

    Pure: it sees only the model. Whether Nix can hold each upstream string was settled when the
    chain was loaded (at its sources or manifest line), and so were the hashes of the upstream
    files and the snapshot; an error here is a bug in a template, located at the step's line.
    """
    common = {"commit": chain.commit, "profile": chain.profile}
    files: dict[str, str] = {}
    step_t = template("step.nix.j2")
    used = sorted({name for s in chain.steps for name in s.distfiles})
    distfiles = [chain.distfile(name) for name in used]
    distfiles_text = template("distfiles.nix.j2").render(distfiles=distfiles, **common)
    for s in chain.steps:
        distfiles = [chain.distfile(name) for name in s.distfiles]
        try:
            files[step_file(s.step.attr_name)] = step_t.render(
                s=s, distfiles=distfiles, override=s.override, **common
            )
        except GenerateError as exc:
            raise GenerateError(
                f"step {s.step.attr_name!r}: {exc.message}",
                file=chain.manifest.path,
                line=s.step.line,
                hint=exc.hint,
            ) from None
    files["default.nix"] = template("index.nix.j2").render(steps=chain.steps, **common)
    files["distfiles.nix"] = distfiles_text
    files["meta.nix"] = template("meta.nix.j2").render(
        arch=chain.arch,
        generator=f"orchestrator {__version__}",
        config=chain.plan.final_config,
        inputs=[(i.path, i.sha256) for i in chain.inputs],
        **common,
    )
    # The data the chain was derived from, for read-only commands on a fresh clone.
    snapshot = chain.snapshot.model_dump()
    files[SNAPSHOT_FILE] = json.dumps(snapshot, indent=1, sort_keys=True) + "\n"
    return files
