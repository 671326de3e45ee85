"""The detectors against the peers' own test cases (see `detector_corpus` for the rules)."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.plugins._detectors import BUILT_IN, scan

from .detector_corpus import CORPUS, Case, load_cases, score, table

FLOOR = 0.95


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    loaded = load_cases()
    if loaded is None:
        pytest.skip(f"the peers' detector corpus is not beside this checkout ({CORPUS})")
    return loaded


def test_every_kind_reaches_the_floor_on_the_peers_cases(cases: list[Case]) -> None:
    chosen = list(BUILT_IN.values())
    main, apart = score(cases, lambda text: scan(text, chosen), BUILT_IN)
    print("\n" + table(main, apart))
    for kind, s in main.items():
        assert s.cases > 0, f"no case checks {kind}"
        assert s.recall >= FLOOR, f"{kind} recall {s.recall:.3f}: {s.misses}"
        assert s.precision >= FLOOR, f"{kind} precision {s.precision:.3f}: {s.misses}"


def test_a_config_listing_one_kind_scores_as_the_full_set_does(cases: list[Case]) -> None:
    # Precedence, not the kinds a config lists, settles overlaps: redacting phone numbers
    # alone must not turn SSNs or an IBAN's digits into phone numbers.
    full = list(BUILT_IN.values())
    for kind, detector in BUILT_IN.items():
        for case in cases:
            if kind in case.checked:
                alone = scan(case.text, [detector])
                assert alone == [f for f in scan(case.text, full) if f[2] == kind], case.id


def test_without_the_corpus_there_is_nothing_to_load(tmp_path: Path) -> None:
    assert load_cases(tmp_path / "absent.json") is None
