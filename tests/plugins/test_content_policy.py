"""content_policy through the reference runtime, and its detectors on their own."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlock.config import load_config_text
from interlock.plugins._detectors import BUILT_IN, luhn, scan
from interlock.plugins.content_policy import ContentPolicy, ContentPolicyConfig
from interlock.runtime import Step

from .helpers import run

POLICY = (ContentPolicy(), {"capabilities": ["notify"]})
AWS_KEY = "AKIA" + "Q3EGRIPXMHDWL7ZB"  # built from pieces: no credential-shaped literal
AWS_SECRET = "q7Rw2" + "Zk9PxLm4Tb8Vn3Yc6Hd1Jf5Gs0Ka7Ue2Wo9"  # 40 characters
GITHUB_TOKEN = "ghp_" + "R8mZk2Qw7Lx4Tb9Vn3Yc6Hd1Jf5Gs0Ka7Ue2"
AWS_EXAMPLE = "AKIA" + "R2D2C3PO7" + "EXAMPLE"  # the shape AWS's documentation uses


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
    result = await run([POLICY], ["ok"], [f"use key {AWS_KEY} please"])
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


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Pay DE89 3704 0044 0532 0130 00 EUR 100", "DE89 3704 0044 0532 0130 00"),
        ("IBAN DE89370400440532013000 BIC COBADEFFXXX", "DE89370400440532013000"),
        ("iban de89370400440532013000", "de89370400440532013000"),
        ("key=sk_test_4eC39HqLyjWDarjtT1zdp7dc", "sk_test_4eC39HqLyjWDarjtT1zdp7dc"),
        (f"aws_secret_access_key = {AWS_SECRET}", AWS_SECRET),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAsecret\n-----END RSA PRIVATE KEY-----",
         "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAsecret\n-----END RSA PRIVATE KEY-----"),
    ],
)  # fmt: skip
def test_values_are_found_whole(text: str, found: str) -> None:
    [(start, end, _)] = scan(text, list(BUILT_IN.values()))
    assert text[start:end] == found


async def test_a_secret_in_a_tool_call_blocks_it() -> None:
    step = Step(tool_calls=(("shell", {"command": f"curl -H 'key: {AWS_KEY}' x"}),))
    result = await run([POLICY], [step, "ok"], ["fetch it"])
    [reply] = result.replies
    assert reply.stopped == "blocked"
    assert reply.reason == "content policy: tool call 'shell': it contains api_key x1"


@pytest.mark.parametrize(
    "arguments",
    [
        # a heredoc: the key starts a line (as JSON text it would follow `\n`)
        {"command": f"cat > .env <<'EOF'\n{AWS_KEY}\nEOF"},
        {"command": f"cat > .env <<'EOF'\nAWS_SECRET_ACCESS_KEY={AWS_SECRET}\nEOF"},
        # a quoted value: as JSON text the quote would be `\"`
        {"path": "config.json", "content": f'{{"token": "{GITHUB_TOKEN}"}}'},
        # nested, and in a list
        {"files": [{"name": "a", "text": f"\n{GITHUB_TOKEN}"}]},
    ],
)
async def test_each_text_of_a_tool_calls_arguments_is_judged_as_the_tool_sees_it(
    arguments: dict[str, object],
) -> None:
    step = Step(tool_calls=(("shell", arguments),))
    result = await run([POLICY], [step, "ok"], ["do it"])
    [reply] = result.replies
    assert reply.stopped == "blocked"
    assert reply.reason == "content policy: tool call 'shell': it contains api_key x1"


@pytest.mark.parametrize(
    "text",
    [
        f"the docs use {AWS_EXAMPLE} as the access key id",
        "export GITHUB_TOKEN=ghp_" + "1234" + "x" * 32,
        "set SLACK_TOKEN=xoxb-" + "x" * 10 + "-" + "x" * 11 + "-" + "x" * 24,
        "glpat-" + "x" * 20 + " is the placeholder in the README",
        "a header alone is no token: eyJ" + "0eXAiOiAiSldUIiwgImFsZyI6ICJSUzI1NiJ9",
        "ask VISITASIAWITHOURTOURGUIDESNOW about it",
        "pk_live_" + "Hq4Tz8Wm2Rk6Pn9Xc3Vb7Lf1" + " is a publishable key",
    ],
)
async def test_placeholders_and_look_alikes_are_not_blocked_as_secrets(text: str) -> None:
    result = await run([POLICY], ["ok"], [text])
    [reply] = result.replies
    assert reply.stopped != "blocked", reply.reason


async def test_a_tool_call_with_only_a_placeholder_runs() -> None:
    step = Step(tool_calls=(("shell", {"command": f"echo {AWS_EXAMPLE}"}),))
    result = await run([POLICY], [step, "done"], ["show the example"])
    assert result.replies[0].stopped != "blocked"
    assert any("ran: echo" in str(data) for data in result.kinds("tool_result"))
