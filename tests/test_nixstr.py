"""The quoting layer against real Nix: upstream text reaches Nix only as a literal or as data.

These tests drive the renderer and the filters directly with hostile values, bypassing the
model's own name validation (objects are built with ``model_construct``), so this layer is shown
safe by itself. Each property test renders a whole batch of values into one set of files and
evaluates them with one ``nix-instantiate --eval --strict --json``, then compares.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from pathlib import Path
from types import SimpleNamespace

import jinja2
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from orchestrator import nixstr
from orchestrator.cli import main
from orchestrator.errors import GenerateError
from orchestrator.generate.render import environment, template
from orchestrator.nixstr import NixText, attr_path, flake_installable, nix_attr, nix_json
from orchestrator.upstream.chain import Distfile, StepInfo, StepOverride
from orchestrator.upstream.plan import PlanStep
from tests.conftest import NIX_FLAGS, REPO, run_nix
from tests.support.trees import make_tree

INJECTION = 'a]++(builtins.trace"INJECTED"[])++[./b'
# Fragments that mean something to Nix's lexer, mixed with arbitrary text below.
NASTY = [
    "${",
    "''${",
    "''",
    "'''",
    "''\\",
    "\\",
    "\\${",
    "$${",
    '"',
    "$",
    "}",
    "\n",
    "\r",
    "\r\n",
    "\t",
    "#",
    "/*",
    "*/",
    "or",
    "if",
    "__curPos",
    "ü",
    "ß🜁",
    "\u2028",
    "\x1b[31m",
    "[bold]",
    INJECTION,
]
TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\0"), max_size=12)
UPSTREAM = st.lists(st.one_of(st.sampled_from(NASTY), TEXT), max_size=6).map("".join)
BATCH = st.lists(UPSTREAM, min_size=1, max_size=24, unique=True)
PROPERTY = settings(
    max_examples=25,
    deadline=None,
    database=None,  # no .hypothesis/ directory in the checkout
    suppress_health_check=[HealthCheck.too_slow],
)


def nix_eval_file(path: Path) -> tuple[object, str]:
    """Value of a Nix file as JSON, and Nix's stderr (traces land there)."""
    proc = subprocess.run(
        ["nix-instantiate", "--option", "substituters", "", "--eval", "--strict", "--json", path],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise AssertionError(f"nix-instantiate {path} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout), proc.stderr


# -- the finalize hook: raw interpolation cannot render ----------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "x = {{ name }};",  # a raw string
        "x = {{ 1 }};",  # an int without a filter
        "x = {{ flag }};",  # a bool
        'x = {{ "literal" }};',  # a constant (jinja folds it at compile time)
        'x = {{ name | nix_str ~ "" }};',  # quoted, then concatenated: plain str again
        "x = {{ name | upper }};",  # a jinja filter, not a nixstr one
        "{% set y = name %}x = {{ y }};",
    ],
)
def test_a_template_that_interpolates_raw_text_fails_to_render(text: str) -> None:
    env = environment(jinja2.DictLoader({"t.nix.j2": text}))
    with pytest.raises(GenerateError, match="t.nix.j2.*not the output of a nixstr filter"):
        env.get_template("t.nix.j2").render(name="a; evil = true", flag=True)


def test_the_filters_render_and_undefined_names_still_fail() -> None:
    env = environment(
        jinja2.DictLoader({"ok": "{{ n | nix_str }} {{ 3 | nix }}", "bad": "{{ m }}"})
    )
    assert env.get_template("ok").render(n="a${b}") == '"a\\${b}" 3'
    with pytest.raises(jinja2.UndefinedError):
        env.get_template("bad").render()


def test_nix_attr_fullmatches_identifiers() -> None:
    assert nix_attr("abc") == "abc"
    assert nix_attr("abc\n") == '"abc\\n"'  # re.match(...$) used to accept this bare
    assert nix_attr("in") == '"in"'
    assert nix_attr("a.b") == '"a.b"'
    assert type(nix_attr("abc")) is NixText


@pytest.mark.parametrize(
    "bad", ["a\0b", "\ud800", 1.5, b"bytes", {"a": 1}, {"set"}, 2**63, -(2**63) - 1]
)
def test_values_nix_cannot_hold_are_refused(bad: object) -> None:
    with pytest.raises(GenerateError):
        nixstr.nix_value(bad)


def test_nul_is_refused_in_strings_and_shown_in_comments() -> None:
    with pytest.raises(GenerateError, match="NUL"):
        nixstr.nix_string("a\0b")
    assert nixstr.nix_comment("a\0b\rc\nd\x1be") == "a\\x00b c d\\x1be"


# -- round trips through the templates and real Nix ---------------------------------------------
def _plan_step(i: int, v: str) -> PlanStep:
    return PlanStep.model_construct(
        index=i,
        line=i + 1,
        directive="build",
        name=v,
        occurrence=1,
        era="kaem",
        bash_generation=0,
        opens_next_script=True,
        ci_pass=2,
        environment_reset={v: v},
        predicate=v or None,
        predicate_vars=[v, v + "2"],
        occurrence_of_kind=0,
    )


def _distfile(v: str) -> Distfile:
    return Distfile.model_construct(
        filename=v,
        sha256=v,
        kind="g",
        urls=[v, "https://example.org/" + v],
        git_repo=v or None,
        git_ref=v,
        first_step=v,
        steps=[v],
        pre_network=True,
        origins=[],
    )


def _step_info(i: int, v: str) -> StepInfo:
    return StepInfo.model_construct(
        step=_plan_step(i, v),
        script=v,
        script_exists=True,
        step_dir=v,
        patches_dir=v,
        distfiles=[v],
        checksums_file=v,
        package_file=v,
        package_sha256=v,
        override=StepOverride.model_construct(version=v, upstream_version=v + "0", file=v),
    )


def _expected_distfile(v: str) -> dict:
    d = {"name": v, "sha256": v, "urls": [v, "https://example.org/" + v]}
    if v:
        d["git"] = {"repo": v, "ref": v}
    return d


def _expected_step(i: int, v: str) -> dict:
    """What step.nix.j2 must evaluate to: every field the value reached, as itself."""
    e: dict = {
        "attrName": v + "-pass1",
        "index": i,
        "directive": "build",
        "name": v,
        "pass": 1,
        "era": "kaem",
        "bashGeneration": 0,
        "opensNextScript": True,
        "manifestLine": i + 1,
        "ciPass": 2,
        "environmentReset": {v: v},
        "distfiles": [_expected_distfile(v)],
        "override": {
            "version": v,
            "upstreamVersion": v + "0",
            "file": v,
            "packageCheck": "no upstream pin",
        },
    }
    if v:
        e |= {
            "predicate": v,
            "predicateInputs": [v, v + "2"],
            "script": v,
            "stepDir": v,
            "patchesDir": v,
            "checksums": v,
            "package": {"file": v, "sha256": v},
        }
    return e


def render_batch(values: list[str], out: Path) -> Path:
    """Every template site an upstream string reaches, once per value; returns the driver."""
    common = {"commit": "\n".join(values), "profile": "\r".join(values)}  # header comments
    for i, v in enumerate(values):
        info = _step_info(i, v)
        text = template("step.nix.j2").render(
            s=info, distfiles=[_distfile(v)], override=info.override, **common
        )
        (out / f"step-{i}.nix").write_text(text)
    (out / "distfiles.nix").write_text(
        template("distfiles.nix.j2").render(distfiles=[_distfile(v) for v in values], **common)
    )
    (out / "meta.nix").write_text(
        template("meta.nix.j2").render(
            arch=values[0],
            generator=values[-1],
            config=[(v, v + "=") for v in values],  # bootstrap.cfg names and values
            inputs=[(v, v) for v in values],
            **common,
        )
    )
    steps = " ".join(
        f"(import ./step-{i}.nix {{ inherit distfiles; }})" for i in range(len(values))
    )
    driver = out / "driver.nix"
    driver.write_text(
        "let distfiles = import ./distfiles.nix { fetchDistfile = d: d; }; in\n"
        f"{{ inherit distfiles; meta = import ./meta.nix; steps = [ {steps} ]; }}\n"
    )
    return driver


@PROPERTY
@given(BATCH)
@example(["${abort ''x''}", "''${x}", "\\", '"', "a\nb", "\r\n", "ü", "", "in", INJECTION])
@example(["a''", "a'", "a''${x}", "a-", "-a", "_", "or", "__curPos", "a.b", "0", "a b", "$"])
def test_upstream_strings_round_trip_through_every_template_site(
    nix: str, values: list[str]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        got, stderr = nix_eval_file(render_batch(values, Path(tmp)))
    assert "INJECTED" not in stderr and "trace:" not in stderr
    assert got["steps"] == [_expected_step(i, v) for i, v in enumerate(values)]
    assert got["distfiles"] == {v: _expected_distfile(v) for v in values}
    meta = got["meta"]
    assert meta["config"] == [{"name": v, "value": v + "="} for v in values]
    assert meta["inputs"] == {v: v for v in values}
    assert (meta["arch"], meta["generator"]) == (values[0], values[-1])


@PROPERTY
@given(st.lists(TEXT | UPSTREAM, min_size=1, max_size=24))
@example(["a\nb = 2; }", "x\r}", "\\\n", "*/ 2", "\x00\n3"])
def test_comments_cannot_end_early(nix: str, values: list[str]) -> None:
    # Each comment is followed by code: if any comment ended early, the rest of its text
    # would be parsed as Nix and the file would fail or give another value.
    lines = [
        f"  # {nixstr.nix_comment(v)}\n  {nixstr.nix_attr(f'v{i}')} = {i};"
        for i, v in enumerate(values)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "comments.nix"
        f.write_text("{\n" + "\n".join(lines) + "\n}\n")
        got, _ = nix_eval_file(f)
    assert got == {f"v{i}": i for i in range(len(values))}


@PROPERTY
@given(st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), min_size=1, max_size=20))
def test_integers_round_trip(nix: str, values: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "ints.nix"
        f.write_text(
            f"{{ list = {nixstr.nix_value(values)}; first = {nixstr.nix_value(values[0])}; }}"
        )
        got, _ = nix_eval_file(f)
    assert got == {"list": values, "first": values[0]}


# -- paths: only validated names become path literals -------------------------------------------
PATHISH = st.text(alphabet="ab.-_+/$]{}\"' \n", min_size=1, max_size=8)


@PROPERTY
@given(st.lists(PATHISH, min_size=1, max_size=24, unique=True))
@example(["a.b", "..", ".", "../x", "a/b", INJECTION, ".hidden", "a b", "${x}", "-x", "+"])
def test_index_paths_are_accepted_only_when_they_stay_in_the_directory(
    nix: str, names: list[str]
) -> None:
    accepted = []
    for n in names:
        try:
            nixstr.nix_path_segment(n)
        except GenerateError:
            assert any(c in n for c in "/$]{}\"' \n") or n.startswith(".")
            continue
        accepted.append(n)
    if not accepted:
        return
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for n in accepted:
            (d / f"{n}.nix").write_text(nixstr.nix_string(n))
        steps = [SimpleNamespace(step=SimpleNamespace(attr_name=n)) for n in accepted]
        (d / "default.nix").write_text(
            template("index.nix.j2").render(steps=steps, commit=None, profile="nix")
        )
        (d / "driver.nix").write_text(
            "map (p: { file = toString p; value = import p; }) (import ./default.nix)"
        )
        got, _ = nix_eval_file(d / "driver.nix")
    assert got == [{"file": f"{d}/{n}.nix", "value": n} for n in accepted]


def test_the_injection_line_never_becomes_nix_code(nix: str, tmp_path: Path) -> None:
    # Control: the index as it used to be rendered (the name pasted into a path) runs the code.
    (tmp_path / "old.nix").write_text(f"[\n  ./{INJECTION}-pass1.nix\n]\n")
    (tmp_path / "count.nix").write_text("builtins.length (import ./old.nix)")
    count, stderr = nix_eval_file(tmp_path / "count.nix")
    assert count == 2  # [ ./a ] ++ (trace ...) ++ [ ./b-pass1.nix ]
    assert "trace: INJECTED" in stderr
    # The index template refuses the name ...
    steps = [SimpleNamespace(step=SimpleNamespace(attr_name=INJECTION + "-pass1"))]
    with pytest.raises(GenerateError, match="cannot be a file name"):
        template("index.nix.j2").render(steps=steps, commit=None, profile="nix")
    # ... and everywhere else it is a literal: the step file evaluates, nothing is traced.
    info = _step_info(0, INJECTION)
    (tmp_path / "step.nix").write_text(
        template("step.nix.j2").render(
            s=info, distfiles=[], override=None, commit=INJECTION, profile=INJECTION
        )
    )
    (tmp_path / "driver.nix").write_text("import ./step.nix { distfiles = {}; }")
    got, stderr = nix_eval_file(tmp_path / "driver.nix")
    assert "INJECTED" not in stderr
    assert got["name"] == INJECTION and got["predicate"] == INJECTION


@pytest.mark.parametrize(
    "pkg", [INJECTION, "../x", "a${b}"], ids=["injection", "traversal", "interpolation"]
)
def test_generate_refuses_a_hostile_step_name_and_writes_nothing(
    tmp_path: Path, capsys, pkg: str
) -> None:
    root = make_tree(tmp_path / "lb", manifest=f"build: {pkg}\n", steps={pkg: {"pass1.kaem": ""}})
    out = tmp_path / "lb-out" / "steps"
    rc = main(["generate", "--live-bootstrap", str(root), "--output", str(out)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "steps/manifest:1" in err and "Traceback" not in err
    assert not out.exists()
    assert not list((tmp_path / "lb-out").rglob("*.nix")) and not list(tmp_path.glob("*.nix"))


# -- Nix command lines ----------------------------------------------------------------------
def test_nix_json_passes_data_not_code(nix: str) -> None:
    value = {"a${builtins.trace ''INJECTED'' ''''}": ["\\", '"', "''${x}", "ü\n"]}
    proc = subprocess.run(
        ["nix", *NIX_FLAGS, "eval", "--json", "--expr", nix_json(value)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "INJECTED" not in proc.stderr
    assert json.loads(proc.stdout) == value


NAMES_FLAKE = """{
  outputs = _: let names = builtins.fromJSON (builtins.readFile ./names.json); in {
    packages.x86_64-linux = builtins.listToAttrs (builtins.genList (i: {
      name = builtins.elemAt names i;
      value = derivation { name = "p${toString i}"; builder = "/x"; system = "x86_64-linux"; attr = builtins.elemAt names i; };
    }) (builtins.length names));
  };
}
"""
ATTR_NAMES = st.lists(UPSTREAM, min_size=1, max_size=16, unique=True)


def _selected(installables: list[str], cwd: Path) -> list[str]:
    proc = subprocess.run(
        ["nix", *NIX_FLAGS, "show-derivation", *installables],
        capture_output=True,
        text=True,
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stderr
    drvs = json.loads(proc.stdout).values()
    return sorted(d["env"]["attr"] for d in drvs)


@PROPERTY
@given(ATTR_NAMES)
@example(
    [
        "mes-0.27.1-pass1",
        "0",
        "+1",
        "a.b",
        "a\\b",
        "a${x}",
        "a%22b",
        "a#b",
        "ü",
        "a b",
        "a\nb",
        '"',
        "",
    ]
)
def test_attribute_paths_select_exactly_the_named_attribute(nix: str, names: list[str]) -> None:
    """`--file F PATH` and `FLAKE#PATH` (Nix 2.8: split at dots, "..." groups, no escapes,
    the flake fragment percent-decoded first) select each name itself, or refuse it."""
    usable = [n for n in names if n and '"' not in n and not re.fullmatch(r"\+?[0-9]+", n)]
    for n in set(names) - set(usable):
        with pytest.raises(GenerateError):
            attr_path([n])
    if not usable:
        return
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "names.json").write_text(json.dumps(names))
        (d / "flake.nix").write_text(NAMES_FLAKE)
        (d / "f.nix").write_text("(import ./flake.nix).outputs {}")
        by_file = _selected(
            ["--file", "f.nix", *(attr_path(["packages", "x86_64-linux", n]) for n in usable)], d
        )
        by_flake = _selected(
            [flake_installable(f"path:{d}", ["packages", "x86_64-linux", n]) for n in usable], d
        )
    assert by_file == sorted(usable)
    assert by_flake == sorted(usable)


def test_step_outputs_passes_hostile_names_as_data(nix: str, tmp_path: Path) -> None:
    """pins.step_outputs used to paste json.dumps into a Nix string: `${` in a name ran code."""
    from orchestrator.verify.pins import current_system, step_outputs

    hostile = "x${builtins.trace ''INJECTED'' ''''}"
    names = [hostile, "a.b", "back\\slash", '"q"', "ü"]
    (tmp_path / "names.json").write_text(json.dumps(names))
    (tmp_path / "flake.nix").write_text(
        "{ outputs = _: { packages.${builtins.head (builtins.fromJSON (builtins.readFile ./system.json))} ="
        ' builtins.listToAttrs (map (n: { name = n; value = { outPath = builtins.toFile "o" n; }; })'
        " (builtins.fromJSON (builtins.readFile ./names.json))); }; }"
    )
    (tmp_path / "system.json").write_text(json.dumps([current_system()]))
    got = step_outputs(f"path:{tmp_path}", [*names, "absent"])
    assert list(got) == sorted([*names, "absent"])
    assert got["absent"] is None
    for n in names:
        out = got[n]
        assert out is not None and Path(out).read_text() == n


@pytest.mark.parametrize(
    ("manifest", "sources", "where"),
    [
        (
            "build: a-1\n",
            f"f https://example.org/a\0b.tar.gz {'c' * 64} a-1.tar.gz\n",
            "steps/a-1/sources:1",
        ),
        ("build: a-1 ( ARCH == x86 || ARCH == a\0b )\n", "", "steps/manifest:1"),
    ],
    ids=["nul-in-url", "nul-in-predicate"],
)
def test_a_value_nix_cannot_hold_is_refused_at_its_line(
    tmp_path: Path, capsys, manifest: str, sources: str, where: str
) -> None:
    root = make_tree(
        tmp_path / "lb", manifest=manifest, steps={"a-1": {"pass1.kaem": "", "sources": sources}}
    )
    out = tmp_path / "out"
    rc = main(["generate", "--live-bootstrap", str(root), "--output", str(out)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert where in err and "Traceback" not in err
    assert not out.exists()


def test_the_nix_programs_are_files_that_take_json(nix: str) -> None:
    # nixexpr/*.nix hold the Nix the CLI runs; Python passes only data (as JSON), never code
    from orchestrator.nixcli import PROGRAMS, program

    names = sorted(p.stem for p in PROGRAMS.glob("*.nix"))
    assert names == ["fetch-tree", "pair-roots", "step-outputs"]
    sources = "\n".join(p.read_text() for p in (REPO / "orchestrator").rglob("*.py"))
    for name in names:
        assert f'program("{name}"' in sources, f"{name}.nix is not used"
    hostile = ["${builtins.trace ''INJECTED'' ''''}", "a.b"]
    packages = nix_json({"a.b": {"outPath": "/x"}})
    expr = f"{program('step-outputs', hostile)} {packages}"
    got = json.loads(run_nix("eval", "--json", "--expr", expr).stdout)
    assert got == {hostile[0]: None, "a.b": "/x"}
