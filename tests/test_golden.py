"""Golden cases of the printer and the parsers (tests/support/golden.py): a small named input,
its expected output files. A missing or stale expected file fails; after a deliberate change,
``pytest tests/test_golden.py --update-goldens`` rewrites them for review."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import golden

CASES = golden.cases()


def test_every_kind_has_cases_and_every_case_a_kind() -> None:
    kinds = {case.parent.name for case in CASES}
    assert kinds == set(golden.RUNNERS)
    assert 10 <= len(CASES) <= 20


@pytest.mark.parametrize("case", CASES, ids=[f"{c.parent.name}/{c.name}" for c in CASES])
def test_golden(case: Path, request: pytest.FixtureRequest) -> None:
    got = golden.produce(case)
    if request.config.getoption(golden.UPDATE_OPTION):
        golden.write_expected(case, got)
    expected = golden.read_expected(case)
    assert expected, (
        f"{case.relative_to(golden.GOLDEN)} has no expected output: run "
        f"`pytest tests/test_golden.py {golden.UPDATE_OPTION}` and review it"
    )
    assert sorted(got) == sorted(expected), "files produced vs expected/"
    for rel in sorted(got):
        assert got[rel] == expected[rel], f"{rel} differs from expected/{rel}"


def test_a_missing_or_changed_golden_fails(tmp_path: Path) -> None:
    # the gate itself: a case whose expected/ is missing, short or edited does not pass
    case = tmp_path / "sources" / "one-line"
    (case / "input").mkdir(parents=True)
    (case / "input" / "sources").write_text(f"f https://example.org/a-1.tar.gz {'a' * 64}\n")
    got = golden.produce(case)
    assert golden.read_expected(case) == {}
    golden.write_expected(case, got)
    assert golden.read_expected(case) == got
    (case / "expected" / "sources.json").write_text("[]\n")
    assert golden.read_expected(case) != got
    golden.write_expected(case, {})
    assert golden.read_expected(case) == {}
