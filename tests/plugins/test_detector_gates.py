"""The detectors' prefilters never hide a finding: a gate (or a secret rule's keywords)
that says "no" is only ever said of a text in which the full scan finds nothing."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interlock.plugins._detectors import BUILT_IN, SECRET_RULES, Detector, View, scan

from .detector_corpus import load_cases
from .test_detectors import BE, DE, GB, NO, VG
from .test_secret_rules import CASES

GATED = [d for d in BUILT_IN.values() if d.gate is not None]


def ungated() -> list[Detector]:
    """Every built-in detector with no prefilter at all: each secret rule tried whatever
    the text's keywords, each number detector whatever its digits."""

    def every_rule(text: str) -> list[tuple[int, int]]:
        return [span for rule in SECRET_RULES for span in rule.matches(text)]

    plain = [dataclasses.replace(d, gate=None) for d in BUILT_IN.values()]
    return [dataclasses.replace(d, finder=every_rule) if d.kind == "api_key" else d
            for d in plain]  # fmt: skip


# Values of every kind, whole and cut short, so that texts come near every gate's line
# (one digit fewer than a value needs) from both sides.
VALUES = [
    "4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005", "078-05-1120",
    "+1 415 555 2671", "(415) 555-2671", "+44 20 7946 0958", "030 901820", DE, NO, BE, GB, VG,
    "ada@example.com", *(v for found, _ in CASES.values() for v in found),
]  # fmt: skip
PIECES = [
    *VALUES,
    *(v[:cut] for v in VALUES for cut in (len(v) // 2, len(v) - 1, len(v) - 2)),
    *"0123456789 -.()+/:\n\tabcXYZ@_",
    "\u0661\u0662",  # Arabic-Indic digits: the view makes them ASCII ones
    "\uff14\uff11",  # full-width digits
    "\u200b",  # a zero-width space, left out of the view
]
texts = st.lists(st.sampled_from(PIECES), max_size=12).map("".join)


def corpus_texts() -> list[str]:
    cases = load_cases()
    if cases is None:
        pytest.skip("the peers' detector corpus is not beside this checkout")
    return [case.text for case in cases]


def assert_gates_hide_nothing(text: str) -> None:
    view = View(text).text  # what `scan` gives the detectors
    for detector in GATED:
        assert detector.gate is not None
        if not detector.gate(view):
            assert list(detector.finder(view)) == [], (detector.kind, text)
    lowered = view.lower()
    for rule in SECRET_RULES:
        if not any(keyword in lowered for keyword in rule.keywords):
            assert list(rule.matches(view)) == [], (rule.name, text)


@settings(max_examples=400, deadline=None)
@given(texts)
def test_a_gate_says_no_only_where_the_full_scan_finds_nothing(text: str) -> None:
    assert_gates_hide_nothing(text)


@settings(max_examples=200, deadline=None)
@given(texts)
def test_the_gated_scan_finds_what_the_ungated_one_finds(text: str) -> None:
    assert scan(text, list(BUILT_IN.values())) == scan(text, ungated())


def test_on_the_peers_cases_the_gates_hide_nothing() -> None:
    full = ungated()
    for text in corpus_texts():
        assert_gates_hide_nothing(text)
        assert scan(text, list(BUILT_IN.values())) == scan(text, full), text


def test_the_gates_do_turn_texts_away() -> None:
    # They are prefilters, not decoration: too few digits, no keyword, no scan.
    view = "deploy build 42 of the release to the staging hosts"
    gates = {d.kind: d.gate for d in GATED if d.gate is not None}
    assert [kind for kind, gate in gates.items() if not gate(view)] == ["card", "ssn", "phone"]
    assert not any(gate("no digits here") for gate in gates.values())
    assert not [rule.name for rule in SECRET_RULES
                if any(k in view.lower() for k in rule.keywords)]  # fmt: skip


def test_digits_are_counted_as_the_regexes_see_them() -> None:
    # Nine Arabic-Indic digits are nine digits to `\d`, on a text the view did not fold.
    arabic = "".join(chr(0x0660 + int(c)) for c in "078051120")
    ssn = BUILT_IN["ssn"]
    assert ssn.gate is not None and ssn.gate(f"{arabic[:3]}-{arabic[3:5]}-{arabic[5:]}")
