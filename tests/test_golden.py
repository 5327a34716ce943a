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
    assert golden.problems(case, got) == []


def test_a_missing_stale_or_changed_golden_fails(tmp_path: Path) -> None:
    # the gate itself: each way expected/ can disagree with the code is reported
    case = tmp_path / "sources" / "one-line"
    (case / "input").mkdir(parents=True)
    (case / "input" / "sources").write_text(f"f https://example.org/a-1.tar.gz {'a' * 64}\n")
    got = golden.produce(case)
    assert "has no expected output" in golden.problems(case, got)[0]
    golden.write_expected(case, got)
    assert golden.problems(case, got) == []
    (case / "expected" / "sources.json").write_text("[]\n")
    assert golden.problems(case, got) == ["sources.json differs from expected/sources.json"]
    (case / "expected" / "old.json").write_text("[]\n")
    assert "expected/old.json is stale (nothing produces it)" in golden.problems(case, got)
    (case / "expected" / "sources.json").unlink()
    assert "expected/sources.json is missing" in golden.problems(case, got)
    golden.write_expected(case, got)  # what --update-goldens does: expected/ becomes got
    assert golden.problems(case, got) == []
