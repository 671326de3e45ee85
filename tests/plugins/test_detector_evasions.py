"""Values spelt to slip past the detectors: other digits, unusual spaces and dashes,
invisible characters inside, look-alike `@`, odd separators and glued words. Each is found
on the normalised view and removed whole from the text as written."""

from __future__ import annotations

import pytest

from interlock.plugins._detectors import BUILT_IN, View, redact, scan
from interlock.plugins.content_policy import ContentPolicy, ContentPolicyConfig

ALL = list(BUILT_IN.values())
ZWSP, NBSP, SHY = "\u200b", "\u00a0", "\u00ad"
CARD = "4111111111111111"
AMEX = "378282246310005"
IBAN = "DE89370400440532013000"
GITHUB_TOKEN = "ghp_" + "aB3dE5fG7hJ9kL1m" + "N3pQ5rS7tU9vW1xY3zA5"  # built from pieces
AWS_ID = "AKIA" + "IOSFODNN7" + "ABCDEFG"
FULL_WIDTH_INTERNAL = "".join(chr(ord(c) + 0xFEE0) for c in "internal")


def groups(value: str, separator: str, sizes: tuple[int, ...] = (4, 4, 4, 4)) -> str:
    parts, at = [], 0
    for size in sizes:
        parts.append(value[at : at + size])
        at += size
    return separator.join(parts)


def digits(value: str, zero: str) -> str:
    """`value`'s ASCII digits written with another script's digits, starting at `zero`."""
    return "".join(chr(ord(zero) + int(c)) if c.isdigit() else c for c in value)


def found(text: str) -> list[tuple[str, str]]:
    return [(kind, text[s:e]) for s, e, kind in scan(text, ALL)]


def assert_found_whole(text: str, value: str, kind: str) -> None:
    assert found(f"see {text} now") == [(kind, text)], (kind, text)
    # redaction leaves nothing of the value: no digit, no invisible character
    assert redact(f"see {text} now", scan(f"see {text} now", ALL), "[x]") == "see [x] now"


@pytest.mark.parametrize(
    "text",
    [groups(CARD, NBSP), groups(CARD, "  "), groups(CARD, "."), groups(CARD, "\u2013"),
     groups(CARD, "/"), groups(CARD, " - "), groups(CARD, ZWSP), groups(CARD, "\u202f"),
     digits(CARD, "\uff10"), digits(CARD, "\u0660"), digits(groups(CARD, " "), "\u0966"),
     groups(AMEX, ".", (4, 6, 5)), CARD[:6] + ZWSP + SHY + CARD[6:]],
    ids=["nbsp", "two-spaces", "dots", "en-dash", "slashes", "spaced-dash", "zwsp",
         "narrow-nbsp", "full-width", "arabic-indic", "devanagari", "amex-dots", "invisible"],
)  # fmt: skip
def test_cards_however_they_are_spelt(text: str) -> None:
    assert_found_whole(text, CARD, "card")


@pytest.mark.parametrize(
    "text",
    ["version 4.1.1.1 and 4.1.1.2", "mask 255.255.255.0 255.255.255.0",
     "on 2024/01/15 2024/01/16", groups("4111111111111112", "."),
     groups(CARD, ".") + ".2024", "1.2024." + groups(CARD, "."),
     groups(CARD[:12], "/", (4, 4, 4)) + "/123"],
)  # fmt: skip
def test_dotted_and_slashed_numbers_that_are_not_cards(text: str) -> None:
    assert [k for k, _ in found(text) if k == "card"] == []


@pytest.mark.parametrize(
    "text",
    [groups(IBAN, NBSP, (4, 4, 4, 4, 4, 2)), groups(IBAN, ".", (4, 4, 4, 4, 4, 2)),
     "De" + groups(IBAN[2:], " ", (2, 4, 4, 4, 4, 2)), digits(IBAN, "\uff10"),
     IBAN[:10] + ZWSP + IBAN[10:]],
    ids=["nbsp", "dots", "mixed-case", "full-width", "zwsp"],
)  # fmt: skip
def test_ibans_however_they_are_spelt(text: str) -> None:
    assert_found_whole(text, IBAN, "iban")


def test_a_mixed_case_iban_is_not_taken_apart_for_a_phone_number() -> None:
    text = "De89 3704 0044 0532 0130 00"
    assert found(text) == [("iban", text)]
    assert scan(text, [BUILT_IN["phone"]]) == []


@pytest.mark.parametrize(
    "text",
    ["alice@exämple.de", "alice@xn--exmple-cua.de", "alice\uff20example.com",
     "alice@exam" + SHY + "ple.com", '"alice smith"@example.com', "ali" + ZWSP + "ce@example.com",
     "alice" + ZWSP + "@" + ZWSP + "example.com", "ålice@пример.com"],
    ids=["idn", "punycode", "full-width-at", "soft-hyphen", "quoted", "zwsp-local",
         "zwsp-around-at", "unicode-both"],
)  # fmt: skip
def test_emails_however_they_are_spelt(text: str) -> None:
    assert_found_whole(text, text, "email")


def test_an_email_in_text_of_another_script_ends_where_its_ascii_domain_does() -> None:
    text = "请联系 alice@example.com谢谢"
    [(kind, value)] = found(text)
    assert (kind, value) == ("email", "alice@example.com")


def test_a_zero_width_space_leaves_no_prefix_of_the_email_behind() -> None:
    policy = ContentPolicy()
    assert policy._judge_text(f"write to ali{ZWSP}ce@example.com").text == "write to [email]"


@pytest.mark.parametrize(
    "text",
    [GITHUB_TOKEN[:20] + ZWSP + GITHUB_TOKEN[20:], "_" + GITHUB_TOKEN, GITHUB_TOKEN + "_x",
     "token_" + GITHUB_TOKEN, "x" + AWS_ID, AWS_ID + "abc", "aws%3D" + AWS_ID + "%2F",
     "\uff47\uff48\uff50\uff3f" + GITHUB_TOKEN[4:]],
    ids=["github-zwsp", "github-leading-underscore", "github-trailing-underscore",
         "github-snake-case", "aws-after-lower-case", "aws-before-lower-case",
         "aws-url-encoded", "github-full-width"],
)  # fmt: skip
def test_secrets_glued_to_other_characters_are_denied(text: str) -> None:
    verdict = ContentPolicy()._judge_text(f"here: {text}")
    assert verdict.denied == "it contains api_key x1"


@pytest.mark.parametrize(
    "text",
    ["X" + AWS_ID, AWS_ID + "B", "7" + AWS_ID, "x" + GITHUB_TOKEN, GITHUB_TOKEN + "b"],
)
def test_secrets_inside_a_longer_run_of_their_own_characters_are_another_token(
    text: str,
) -> None:
    # The boundary is the value's own alphabet (gitleaks' rules end at `\b`).
    assert scan(f"here: {text}", [BUILT_IN["api_key"]]) == []


def test_deny_patterns_also_judge_the_normalised_text() -> None:
    policy = ContentPolicy(ContentPolicyConfig(deny=[], deny_patterns=["(?i)internal use only"]))
    for text in [
        "INTERNAL USE ONLY",
        f"internal{NBSP}use on{ZWSP}ly",
        FULL_WIDTH_INTERNAL + " use only",
    ]:
        assert policy._judge_text(text).denied is not None, text
    assert policy._judge_text("internal use, not only").denied is None


def test_the_view_maps_spans_back_to_the_text_as_written() -> None:
    assert View("plain ascii").text == "plain ascii"
    text = f"{ZWSP}a\uff14{SHY}\ufb01{NBSP}b"
    view = View(text)
    assert view.text == "a4fi b"
    # each view character back to the one it came from; a ligature's half to all of it
    assert [view.span(i, i + 1) for i in range(len(view.text))] == [
        (1, 2), (2, 3), (4, 5), (4, 5), (5, 6), (6, 7)
    ]  # fmt: skip
    assert view.span(0, len(view.text)) == (1, len(text))  # invisible ones inside included
    assert View("naïve café").text == "naïve café"  # letters stay as they are


def test_normalising_long_texts_is_linear() -> None:
    # Shapes with a change at every character: nothing to find, and no quadratic work.
    blobs = [ZWSP * 200_000, "\uff14" * 200_000, ("\uff11" + NBSP) * 100_000, "a\uff20" * 100_000,
             ("4111" + ZWSP) * 50_000, "De89." * 40_000]  # fmt: skip
    for blob in blobs:
        assert [k for *_, k in scan(blob, ALL) if k not in ("api_key", "phone")] == []
