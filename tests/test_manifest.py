"""The manifest model against script-generator.c's semantics and the real fixture data."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator.errors import ParseError
from orchestrator.upstream.chain import load_chain
from orchestrator.upstream.manifest import parse_manifest, tokenize_line
from orchestrator.upstream.plan import resolve
from orchestrator.upstream.predicates import evaluate, parse_predicate
from orchestrator.upstream.profiles import Profile, load_profile
from orchestrator.upstream.tree import SourceTree


def plan_of(text: str, **variables: str):
    profile = Profile(name="t", variables=list(variables.items()))
    return resolve(parse_manifest(text, "manifest"), profile)


# -- tokenizer ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "tokens"),
    [
        ("build: a", ["build:", "a"]),
        ("build: a ", ["build:", "a"]),  # one trailing space opens no token
        ("build: a  ", ["build:", "a", ""]),  # the second one does, as in C
        ("build:  a", ["build:", "", "a"]),
        ("build: a # comment", ["build:", "a"]),
        ("build: a#comment", ["build:", "a"]),  # '#' ends the line anywhere
        ("# whole line", []),
    ],
)
def test_tokenizer_matches_consume_line(line: str, tokens: list[str]) -> None:
    assert tokenize_line(line) == tokens


def test_double_space_makes_an_empty_argument_that_fails() -> None:
    with pytest.raises(ParseError) as err:
        parse_manifest("build:  a\n", "m")
    assert err.value.line == 1 and err.value.file == "m"


# -- predicates -----------------------------------------------------------------------------


def pred(text: str, **variables: str) -> str:
    return evaluate(parse_predicate(text.split(" "), "m", 1), variables)


def test_predicates_are_right_recursive_without_precedence() -> None:
    # A || B && C means A || (B && C): with A true and C false that is True,
    # whereas (A || B) && C would be False.
    assert pred("( A == 1 || B == 1 && C == 1 )", A="1", B="0", C="0") == "True"
    # and A && B || C means A && (B || C)
    assert pred("( A == 1 && B == 1 || C == 1 )", A="0", B="0", C="1") == "False"


def test_unset_variables_read_as_empty_and_constants_are_literal() -> None:
    assert pred("( X != y )") == "True"
    assert pred("( X == y )") == "False"
    assert pred("( True )") == "True"
    assert pred("( FOO )", FOO="True") == "FOO"  # a constant is not looked up
    assert pred("( A == 1 || True )", A="0") == "True"


@pytest.mark.parametrize(
    "text",
    [
        "( A == 1",  # unbalanced
        "A == 1 )",  # no opening parenthesis
        "( A = 1 )",  # not an operator
        "( A == 1 B == 2 )",  # missing connective
        "( ( A == 1 ) )",  # no nesting
        "( A == 1 ) trailing",
        "( A == 1 ||",
    ],
)
def test_malformed_predicates_name_file_and_line(text: str) -> None:
    with pytest.raises(ParseError) as err:
        parse_manifest(f"build: x\nbuild: y {text}\n", "steps/manifest")
    assert (err.value.file, err.value.line) == ("steps/manifest", 2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("frobnicate: x", "unknown directive"),
        ("define: X 1", "missing equals"),
        ("define: X =", "no value"),
        ("build:", "needs an argument"),
    ],
)
def test_bad_directives(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=message) as err:
        parse_manifest(f"# header\n\n{text}\n", "m")
    assert err.value.line == 3


# -- defines and passes ----------------------------------------------------------------------


def test_defines_evaluate_top_to_bottom_and_pass_numbers_count_survivors() -> None:
    plan = plan_of(
        "build: p\n"
        "define: X = ( A == 1 )\n"
        "build: p ( X == True )\n"  # survives: pass 2
        "build: p ( X == False )\n"  # dropped: does not count
        "define: X = False\n"
        "build: p ( X == True )\n"  # dropped now
        "build: p\n",  # pass 3
        A="1",
    )
    assert [(s.name, s.pass_no, s.line) for s in plan.steps] == [
        ("p", 1, 1),
        ("p", 2, 3),
        ("p", 3, 7),
    ]
    assert dict(plan.final_config)["X"] == "False"


def test_define_with_predicate_and_first_variable_quirk() -> None:
    plan = plan_of(
        "define: J = 4 ( K == True )\ndefine: A = changed\nbuild: x ( A == orig )\n",
        A="orig",
        K="False",
    )
    # J is not defined (its predicate is false); redefining the *first* variable appends a
    # shadowed duplicate in script-generator, so lookups still see the original value.
    assert [n for n, _ in plan.final_config] == ["A", "K", "A"]
    assert [s.name for s in plan.steps] == ["x"]


def test_uninstall_takes_every_token_up_to_the_predicate() -> None:
    plan = plan_of("uninstall: a b /usr/bin/c ( X == 1 )\nuninstall: d\n", X="1")
    assert [s.name for s in plan.steps] == ["a b /usr/bin/c", "d"]
    assert [s.attr_name for s in plan.steps] == ["uninstall-1", "uninstall-2"]


def test_kaem_era_lasts_up_to_and_including_the_first_bash_build() -> None:
    plan = plan_of("build: a\nbuild: bash-2.05b\nimprove: x\nbuild: bash-5\nbuild: b\n")
    assert [(s.name, s.era, s.bash_generation) for s in plan.steps] == [
        ("a", "kaem", 0),
        ("bash-2.05b", "kaem", 0),
        ("x", "bash", 1),
        ("bash-5", "bash", 1),
        ("b", "bash", 2),
    ]
    # the rule's one home: the steps that close their script with the call of the next one
    # (an improve named like a bash does not)
    plan = plan_of("build: a\nbuild: bash-2.05b\nimprove: bash-x\nbuild: bash-5\nbuild: b\n")
    assert [s.name for s in plan.steps if s.opens_next_script] == ["bash-2.05b", "bash-5"]


# -- the real fixtures -----------------------------------------------------------------------


def naive_counts(manifest: Path) -> dict[str, int]:
    """An independent count: directive keywords at the start of non-comment lines."""
    counts: dict[str, int] = {}
    for line in manifest.read_text().splitlines():
        m = re.match(r"^(build|improve|define|jump|uninstall): ", line)
        if m:
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts


@pytest.mark.parametrize("which", ["pinned_fixture", "old_fixture"])
def test_both_fixture_revisions_parse_completely(
    which: str, request: pytest.FixtureRequest
) -> None:
    root: Path = request.getfixturevalue(which)
    manifest = parse_manifest((root / "steps/manifest").read_text(), "m")
    counts: dict[str, int] = {}
    for e in manifest.entries:
        counts[e.kind] = counts.get(e.kind, 0) + 1
    assert counts == naive_counts(root / "steps/manifest")
    chain = load_chain(SourceTree.open(root))
    assert len(chain.steps) > 100 and chain.distfiles


def steps_of(root: Path, profile: str):
    return load_chain(SourceTree.open(root), profile).plan.steps


def test_profiles_select_the_steps_their_bootstrap_cfg_selects(pinned_fixture: Path) -> None:
    nix = {s.attr_name for s in steps_of(pinned_fixture, "nix")}
    ci = [s.attr_name for s in steps_of(pinned_fixture, "bwrap-ci")]
    qemu = {s.attr_name for s in steps_of(pinned_fixture, "qemu")}
    # chroot mode: no kernels, no network, no jumps
    assert "fiwix-1.5.0-lb1-pass1" not in nix and "fiwix-1.5.0-lb1-pass1" in qemu
    assert "improve-get_network-1" not in nix and "improve-get_network-1" in qemu
    assert not [a for a in nix if a.startswith("jump-")]
    # live-bootstrap CI pass1 stops twice at `jump: break` and builds the Linux kernel
    assert [a for a in ci if a.startswith("jump-")] == ["jump-break-1", "jump-break-2"]
    assert "linux-4.14.341-openela-pass1" in ci and "linux-4.14.341-openela-pass1" not in nix
    assert "grub-2.06-pass1" not in nix and "grub-2.06-pass1" in qemu


def test_pass_numbers_on_real_data(pinned_fixture: Path) -> None:
    steps = steps_of(pinned_fixture, "nix")
    tcc = [s.pass_no for s in steps if s.name == "tcc-0.9.27"]
    assert tcc == [1, 2, 3, 4, 5]
    perl_tok = [s.pass_no for s in steps if s.name == "perl-Devel-Tokenizer-C-0.11"]
    assert perl_tok == list(range(1, 13))
    improves = [s.occurrence for s in steps if s.name == "populate_device_nodes"]
    assert improves == [1, 2, 3]


def test_era_boundary_on_real_data(pinned_fixture: Path) -> None:
    steps = steps_of(pinned_fixture, "nix")
    first_bash = next(i for i, s in enumerate(steps) if s.name.startswith("bash-"))
    assert steps[first_bash].name == "bash-2.05b" and steps[first_bash].era == "kaem"
    assert all(s.era == "kaem" for s in steps[: first_bash + 1])
    assert all(s.era == "bash" for s in steps[first_bash + 1 :])


def test_every_bash_era_build_has_an_upstream_package_pin(pinned_fixture: Path) -> None:
    chain = load_chain(SourceTree.open(pinned_fixture))
    bash_builds = [s for s in chain.steps if s.step.directive == "build" and s.step.era == "bash"]
    assert bash_builds and all(s.package_sha256 for s in bash_builds)
    tcc = [s.package_file for s in bash_builds if s.step.name == "tcc-0.9.27"]
    assert tcc == [f"tcc-0.9.27_{i}.tar.bz2" for i in range(4)]
    pins = (pinned_fixture / "steps/SHA256SUMS.pkgs").read_text()
    for s in bash_builds:
        assert f"{s.package_sha256}  {s.package_file}" in pins


def test_profile_files_parse() -> None:
    for name in ("nix", "bwrap-ci", "qemu"):
        assert dict(load_profile(name).variables)["ARCH"] == "x86"


def _reference(tokens: list[str], variables: dict[str, str]) -> str:
    """script-generator.c's ``logic``, transcribed literally (recursive, as in C)."""

    def logic(i: int) -> tuple[str, int]:
        lhs = tokens[i]
        if tokens[i + 1] == ")":
            return lhs, i + 1
        equal = variables.get(lhs, "") == tokens[i + 2]
        lhs = "True" if equal == (tokens[i + 1] == "==") else "False"
        nxt = tokens[i + 3]
        if nxt == ")":
            return lhs, i + 3
        rhs, j = logic(i + 4)
        if nxt == "||":
            return ("True" if "True" in (lhs, rhs) else "False"), j
        return ("True" if lhs == rhs == "True" else "False"), j

    return logic(1)[0]


def test_iterative_evaluation_equals_the_recursive_c_logic() -> None:
    import random

    rng = random.Random(8)
    for _ in range(2000):
        n = rng.randint(1, 7)
        tokens = ["("]
        for k in range(n):
            if k:
                tokens.append(rng.choice(["||", "&&"]))
            tokens += [rng.choice("ABC"), rng.choice(["==", "!="]), rng.choice("01")]
        if rng.random() < 0.2:
            tokens += [rng.choice(["||", "&&"]), rng.choice(["True", "False", "X"])]
        tokens.append(")")
        variables = {v: rng.choice("01") for v in "AB"}  # C stays unset: ""
        got = evaluate(parse_predicate(tokens, "m", 1), variables)
        assert got == _reference(tokens, variables), " ".join(tokens)


def test_long_predicates_parse_and_evaluate_without_recursion() -> None:
    terms = " && ".join(["A == 1"] * 100_000)
    assert pred(f"( {terms} )", A="1") == "True"
    assert pred(f"( {terms} && A == 2 )", A="1") == "False"


def test_a_predicate_nix_cannot_hold_is_refused_at_its_line() -> None:
    # the predicate becomes a Nix string in its step file: settled when the manifest is read
    text = "build: a\nbuild: b ( X == \0 )\n"
    with pytest.raises(ParseError, match="predicate: cannot represent a NUL") as err:
        parse_manifest(text, Path("steps/manifest"))
    assert err.value.line == 2
