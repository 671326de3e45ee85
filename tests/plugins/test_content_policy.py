"""content_policy through the reference runtime, and its detectors on their own."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlock.config import load_config_text
from interlock.plugins._detectors import BUILT_IN, iban, luhn, scan
from interlock.plugins.content_policy import ContentPolicy, ContentPolicyConfig
from interlock.runtime import Step

from .helpers import run

POLICY = (ContentPolicy(), {"capabilities": ["notify"]})


async def test_personal_data_is_redacted_both_ways_and_never_reaches_the_model() -> None:
    script = [
        Step(tool_calls=(("shell", {"command": "whoami --mail bob@example.org"}),)),
        "Your card 4111 1111 1111 1111 is noted; call +44 20 7946 0958.",
    ]
    result = await run([POLICY], script, ["I am ada@example.com, IBAN GB82 WEST 1234 5698 7654 32"])

    sent = "\n".join(m.content for r in result.model.requests for m in r.messages)
    assert "ada@example.com" not in sent and "GB82" not in sent
    assert "bob@example.org" not in sent  # the tool's output, on its way to the model
    assert "[email]" in sent and "[iban]" in sent
    assert result.replies[0].reply == "Your card [card] is noted; call [phone]."
    logged = str(result.records)
    assert "ada@example.com" not in logged and "4111 1111" not in logged  # nor in the log
    assert "redacted email x1, iban x1 (message_received)" in result.notifications


async def test_a_secret_blocks_the_message_and_the_reason_never_quotes_it() -> None:
    result = await run([POLICY], ["ok"], ["use key AKIAIOSFODNN7EXAMPLE please"])
    [reply] = result.replies
    assert reply.stopped == "blocked"
    assert reply.reason == "content policy: it contains api_key x1"
    assert "AKIA" not in str(result.records) and result.model.requests == []


async def test_configured_from_yaml_with_custom_detectors_and_deny_patterns() -> None:
    manager = load_config_text(r"""
plugins:
  - name: content-policy
    use: content-policy
    config:
      redact: [employee_id]
      deny: []
      deny_patterns: ["(?i)internal use only"]
      custom: {employee_id: "EMP-\\d{6}"}
      where: [message_received]
""")
    result = await run([], ["ok", "ok"], ["ask EMP-123456 about it", "INTERNAL USE ONLY: plan"],
                       manager=manager)  # fmt: skip
    second = result.replies[1]
    [user] = result.kinds("user")[:1]
    assert user["content"] == "ask [employee_id] about it"
    assert second.reason == "content policy: it matches the deny pattern '(?i)internal use only'"


def test_bad_config_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="no detector 'passport'"):
        ContentPolicy(ContentPolicyConfig(redact=["passport"]))
    with pytest.raises(ValueError, match="not a regex"):
        ContentPolicyConfig(deny_patterns=["(unclosed"])


cards = st.tuples(st.integers(2, 6), st.lists(st.integers(0, 9), min_size=11, max_size=17)).map(
    lambda parts: [parts[0], *parts[1], (10 - _luhn_sum([parts[0], *parts[1]])) % 10]
)


def _luhn_sum(digits: list[int]) -> int:
    total = 0
    for position, digit in enumerate(reversed(digits)):
        doubled = digit * 2 if position % 2 == 0 else digit
        total += doubled - 9 if doubled > 9 else doubled
    return total % 10


@given(digits=cards)
def test_every_luhn_valid_number_is_a_card_and_one_digit_off_is_not(digits: list[int]) -> None:
    number = "".join(map(str, digits))
    assert luhn(number)
    found = scan(f"pay with {number} today", [BUILT_IN["card"]])
    assert [(kind, number) for _, _, kind in found] == [("card", number)]
    wrong = number[:-1] + str((digits[-1] + 1) % 10)
    assert not luhn(wrong)


def test_ssn_shapes_that_are_never_issued_are_not_ssns() -> None:
    ssn = [BUILT_IN["ssn"]]
    assert [k for *_, k in scan("ssn 123-45-6789", ssn)] == ["ssn"]
    assert scan("000-12-3456 666-12-3456 900-12-3456 123-00-4567 123-45-0000", ssn) == []


def test_iban_check_digits() -> None:
    assert iban("GB82 WEST 1234 5698 7654 32") and iban("DE89370400440532013000")
    assert not iban("GB83 WEST 1234 5698 7654 32")


@pytest.mark.parametrize(
    "text",
    ["pi is 3.14159265358979", "order 12345678901234567890", "on 2024-01-15 at 10:30",
     "version 1.2.3.4", "ref 123456789", "job started 2024-11-22 10:30:00 and ended",
     "connect to 192.168.100.200 port 22", "ts=1732241400008 (epoch ms, Luhn-valid)"],
)  # fmt: skip
def test_numbers_that_only_look_sensitive_are_left_alone(text: str) -> None:
    assert scan(text, list(BUILT_IN.values())) == []


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Pay DE89 3704 0044 0532 0130 00 EUR 100", "DE89 3704 0044 0532 0130 00"),
        ("IBAN DE89370400440532013000 BIC COBADEFFXXX", "DE89370400440532013000"),
        ("iban de89370400440532013000", "de89370400440532013000"),
        ("key=sk_test_4eC39HqLyjWDarjtT1zdp7dc", "sk_test_4eC39HqLyjWDarjtT1zdp7dc"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
         "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAsecret\n-----END RSA PRIVATE KEY-----",
         "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAsecret\n-----END RSA PRIVATE KEY-----"),
    ],
)  # fmt: skip
def test_values_are_found_whole(text: str, found: str) -> None:
    [(start, end, _)] = scan(text, list(BUILT_IN.values()))
    assert text[start:end] == found


def test_long_texts_without_matches_are_scanned_in_one_pass() -> None:
    blob = "A" * 200_000 + " " + "b." * 100_000  # no '@': nothing to find, nothing to retry
    assert scan(blob, list(BUILT_IN.values())) == []


async def test_a_secret_in_a_tool_call_blocks_it() -> None:
    step = Step(tool_calls=(("shell", {"command": "curl -H 'key: AKIAIOSFODNN7EXAMPLE' x"}),))
    result = await run([POLICY], [step, "ok"], ["fetch it"])
    [reply] = result.replies
    assert reply.stopped == "blocked"
    assert reply.reason == "content policy: tool call 'shell': it contains api_key x1"
