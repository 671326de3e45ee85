"""The personal-data detectors, and how overlapping findings are settled."""

from __future__ import annotations

import itertools

import pytest

from interlock.plugins._detectors import BUILT_IN, Detector, View, detectors, iban, redact, scan

ALL = list(BUILT_IN.values())


def make_iban(country: str, bban: str) -> str:
    """An IBAN with correct check digits (ISO 7064 mod 97-10, computed here)."""
    digits = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{country}{98 - int(digits) % 97:02d}{bban}"


def grouped(compact: str, separator: str = " ") -> str:
    return separator.join(compact[i : i + 4] for i in range(0, len(compact), 4))


DE = make_iban("DE", "50010517" + "6274915308")  # 22: 8 digits bank, 10 account
NO = make_iban("NO", "9710" + "4482613")  # 15
BE = make_iban("BE", "310" + "7362419" + "58")  # 16
DK = make_iban("DK", "2000" + "6173849261")  # 18
VG = make_iban("VG", "ABCD" + "4826193750617384")  # 24: 4 letters, 16 digits
AL = make_iban("AL", "21110090" + "0000000387452613")  # 28
IL = make_iban("IL", "010" + "800" + "0000094736281")  # 23
GB = make_iban("GB", "MIDL" + "40051541738269")  # 22
MIXED_GB = grouped(GB[:4] + GB[4].lower() + GB[5:])
MIXED_DE = grouped(DE[0] + DE[1].lower() + DE[2:])


def found(text: str, kinds: list[str] | None = None) -> list[tuple[str, str]]:
    chosen = ALL if kinds is None else [BUILT_IN[k] for k in kinds]
    return [(kind, text[s:e]) for s, e, kind in scan(text, chosen)]


@pytest.mark.parametrize(
    "number",
    ["+44 161 496 0123", "(206) 555-0171", "303-555-0148", "+1-646-555-0193",
     "1 (720) 555-0164", "+33 4 91 23 45 67", "+30 23 1 0123456", "+49 89 2345678",
     "+61298765432", "202.555.0126", "080-2345-6789", "+44 (161) 496 0123",
     "303-555-0148 ext. 305"],
)  # fmt: skip
def test_phone_numbers_libphonenumber_takes_for_valid_are_found_whole(number: str) -> None:
    assert found(f"call {number} today") == [("phone", number)]


def test_two_numbers_side_by_side_are_two() -> None:
    assert found("lines 303-555-0148 303-555-0177") == [
        ("phone", "303-555-0148"), ("phone", "303-555-0177")
    ]  # fmt: skip


@pytest.mark.parametrize(
    "text",
    ["pi is 3.14159265358979", "order 12345678901234567890", "on 2024-01-15 at 10:30",
     "version 1.2.3.4", "ref 123456789", "job started 2024-11-22 10:30:00 and ended",
     "connect to 192.168.100.200 port 22", "ts=1732241400008 (epoch ms, Luhn-valid)",
     "serial X303-555-0148", "3.14159265 rad",
     "build 20241122.1030.5566"],
)  # fmt: skip
def test_numbers_that_only_look_sensitive_are_left_alone(text: str) -> None:
    assert scan(text, ALL) == []


@pytest.mark.parametrize(
    ("text", "value"),
    [(f"Pay {grouped(DE)} EUR 100", grouped(DE)),
     (f"IBAN {DE} BIC MARKDEF1100", DE),
     (f"iban {DE.lower()}", DE.lower()),
     # any case: the check digits do not see it, and neither does a reader of the IBAN
     (f"iban {MIXED_GB}", MIXED_GB),
     (f"iban {MIXED_DE}", MIXED_DE),
     (f"to {grouped(GB, '-')}.", grouped(GB, "-")),
     (f"send to {grouped(VG)} X by Friday", grouped(VG)),
     (f"{grouped(NO)} and {grouped(BE)}", grouped(NO))],
)  # fmt: skip
def test_ibans_are_found_to_their_countrys_length(text: str, value: str) -> None:
    assert found(text)[0] == ("iban", value)


@pytest.mark.parametrize(
    "text",
    [grouped(AL[:8] + "A" + AL[9:]),  # a letter where the country has digits
     grouped(DE)[:-1],  # one short
     grouped(IL + IL[4:]),  # longer than the country's length, mid-group
     "XX" + DE[2:],  # no such country
     grouped(AL, "/")],
)  # fmt: skip
def test_what_breaks_a_countrys_layout_is_no_iban(text: str) -> None:
    assert [k for k, _ in found(text)] != ["iban"]


def test_iban_check_digits() -> None:
    assert iban(grouped(GB)) and iban(DE) and iban(NO) and iban(DK)
    wrong = f"{GB[:2]}{(int(GB[2:4]) + 1) % 100:02d}{GB[4:]}"
    assert not iban(wrong)


def test_ssns_are_ssns_never_phone_numbers_whatever_the_config_lists() -> None:
    text = "SSN 536-22-4178, call 303-555-0148"
    for order in itertools.permutations(["phone", "ssn", "card"]):
        assert scan(text, [BUILT_IN[k] for k in order]) == scan(text, ALL)
    assert found(text) == [("ssn", "536-22-4178"), ("phone", "303-555-0148")]
    # and redacting phone numbers alone leaves the SSN alone, not half-redacted
    assert found(text, ["phone"]) == [("phone", "303-555-0148")]


def test_ssn_shapes_that_are_never_issued_are_not_ssns() -> None:
    assert found("ssn 123-45-6789", ["ssn"]) == [("ssn", "123-45-6789")]
    assert scan("000-12-3456 666-12-3456 900-12-3456 123-00-4567 123-45-0000", ALL) == []


def test_an_iban_outranks_the_card_and_the_phone_number_inside_it() -> None:
    for text in [grouped(DK), grouped(BE), DK, grouped(NO)]:
        assert found(text) == [("iban", text)]
        # with only cards and phones chosen, the IBAN's digits are not one of those
        assert found(text, ["card", "phone"]) == []


def test_no_finding_starts_inside_a_token() -> None:
    assert found("ref X4527318600472197 and id9-536-22-4178") == []
    assert found("card 4527 3186 0047 2197.") == [("card", "4527 3186 0047 2197")]


def test_a_secret_outranks_everything_it_contains() -> None:
    key = "sk_live_" + "4527318600472197" + "Zq8rT2mWx9"
    assert found(f"key {key}") == [("api_key", key)]


def test_custom_detectors_rank_after_the_built_ins_by_name() -> None:
    chosen = detectors(["phone", "zeta", "alpha"], {"zeta": r"\d{3}-\d{4}", "alpha": r"555"})
    text = "call 303-555-0148"
    assert scan(text, chosen) == [(5, 17, "phone")]
    alpha, zeta = chosen[2], chosen[1]
    assert alpha.rank < zeta.rank and BUILT_IN["phone"].rank < alpha.rank
    assert [k for *_, k in scan("call 555-0132", chosen)] == ["alpha"]


def test_a_custom_detector_from_a_regex() -> None:
    employee = Detector.regex("employee_id", r"EMP-\d{6}")
    text = "ask EMP-123456 or EMP-654321"
    assert redact(text, scan(text, [employee]), "[{kind}]") == "ask [employee_id] or [employee_id]"


def test_long_texts_are_scanned_in_linear_time() -> None:
    # Shapes that make a backtracking regex retry at every position: nothing to find here.
    blobs = [
        "A" * 200_000 + " " + "b." * 100_000,
        "1 " * 100_000,
        "12" * 100_000,
        "-(" * 100_000,
        "DE12 " * 40_000,
        "xoxb-" * 40_000,
        "eyJ" + "a" * 200_000,
        "-----BEGIN RSA PRIVATE KEY-----" + "a" * 100_000,
    ]
    for blob in blobs:
        assert [k for *_, k in scan(blob, ALL) if k != "api_key"] == []


def test_the_view_maps_back_and_squeezes_runs_of_invisible_characters() -> None:
    text = "a\u200b\u200b\u200bb\u00adc\u200bd"
    view = View(text)
    assert view.text == "abcd"
    assert [view.origin(i) for i in range(5)] == [0, 4, 6, 8, 9]
    squeezed = view.squeezed()
    assert squeezed == "a\u200bb\u00adc\u200bd"  # a run of three cut to one; singles kept
    assert View(squeezed).text == view.text
    assert View("plain").squeezed() == "plain" and View("plain").origin(3) == 3
