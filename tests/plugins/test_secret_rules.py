"""Each provider rule of the `api_key` detector: values it must find, and look-alikes it
must leave alone. Values are built from pieces at run time (a seeded generator), so this
file holds no string that looks like a leaked credential."""

from __future__ import annotations

import base64
import json
import random
import string
from pathlib import Path

import pytest

from interlock.plugins._detectors import BUILT_IN, SECRET_RULES, entropy, scan

ALNUM = string.ascii_letters + string.digits
UPPER = string.ascii_uppercase + "234567"
HEX = "0123456789abcdef"
TOKEN = ALNUM + "_-"


def body(n: int, alphabet: str = ALNUM, seed: int = 0) -> str:
    """`n` random characters of `alphabet`, the same on every run."""
    rnd = random.Random(f"{n}/{alphabet}/{seed}")
    return "".join(rnd.choice(alphabet) for _ in range(n))


def digits(n: int, seed: int = 0) -> str:
    return str(random.Random(f"d{n}/{seed}").randint(1, 9)) + body(n - 1, string.digits, seed)


def jwt(header: dict[str, str], payload: dict[str, object], signature: str | None) -> str:
    def part(data: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    token = f"{part(header)}.{part(payload)}"
    return token if signature is None else f"{token}.{signature}"


PEM = "-----BEGIN RSA " + "PRIVATE KEY-----"
PEM_END = "-----END RSA " + "PRIVATE KEY-----"

# rule name -> (values it finds, each put in a sentence; look-alikes it must not find)
CASES: dict[str, tuple[list[str], list[str]]] = {
    "aws-access-key-id": (
        ["AKIA" + body(16, UPPER), "ASIA" + body(16, UPPER), "ABIA" + body(16, UPPER),
         "ACCA" + body(16, UPPER), "A3TX" + body(16, UPPER)],
        ["AKIA" + "X" * 16, "AKIA" + body(9, UPPER) + "EXAMPLE", "AKIA" + body(12, UPPER),
         "X" + "AKIA" + body(16, UPPER), "AKIA" + body(17, UPPER), "akia" + body(16, HEX)],
    ),
    "aws-secret-access-key": (
        ['aws_secret_access_key = "' + body(40, ALNUM + "/+") + '"',
         "AWS_SECRET_KEY: " + body(40, ALNUM + "/+", 1),
         '"awsSecretToken": "' + body(40, ALNUM + "/+", 2) + '"'],
        ["aws_secret_access_key = " + body(41, ALNUM + "/+"),
         "aws_secret_access_key = " + body(39, ALNUM + "/+"),
         "secret = " + body(40, ALNUM + "/+")],
    ),
    "github-token": (
        ["ghp_" + body(36), "gho_" + body(36, seed=1), "ghs_" + body(36, seed=2)],
        ["ghp_" + "x" * 36, "ghp_" + body(35), "foo_" + body(36), "ghp_" + body(37)],
    ),
    "github-fine-grained-pat": (
        ["github_pat_" + body(22) + "_" + body(59)],
        ["github_pat_" + "x" * 22 + "_" + "x" * 59, "github_pat_" + body(40)],
    ),
    "gitlab-token": (
        ["glpat-" + body(20, TOKEN), "gldt-" + body(20, TOKEN), "glrt-" + body(20, TOKEN),
         "glsoat-" + body(50, TOKEN), "glcbt-" + body(5) + "_" + body(20, TOKEN),
         "glffct-" + body(20), "glft-" + body(20), "GR1348941" + body(20, TOKEN)],
        ["glpat_" + body(20), "glpat-" + body(19), "gldt-" + body(51, ALNUM),
         "glpat-" + "x" * 20, "GR1348941" + "12" * 10],
    ),
    "gitlab-routable-token": (
        ["glpat-" + body(27, TOKEN) + "." + body(9, HEX + "ghijk")],
        ["glpat-" + "x" * 27 + "." + "x" * 9],
    ),
    "gitlab-incoming-mail-token": (
        ["glimt-" + body(25, TOKEN)],
        ["glimt-" + body(23), "glimt-" + body(29)],
    ),
    "gitlab-pipeline-trigger-token": (
        ["glptt-" + body(40, HEX)],
        ["glptt-" + "x" * 40, "glptt-" + body(43, HEX), "glptt-" + body(20, HEX)],
    ),
    "gitlab-agent-token": (
        ["glagent-" + body(50, TOKEN), "glagent-" + body(60, TOKEN)],
        ["glagent-" + "X" * 600, "glagent-" + body(20)],
    ),
    "gitlab-oauth-secret": (
        ["gloas-" + body(64, TOKEN)],
        ["gloas-" + body(38), "gloas-" + body(67)],
    ),
    "gitlab-session-cookie": (
        ["_gitlab_session=" + body(32, HEX + "ghijklmnop")],
        ["_gitlab_session=" + body(31, HEX)],
    ),
    "openai-key": (
        ["sk-proj-" + body(58, TOKEN) + "T3Blbk" + "FJ" + body(58, TOKEN, 1),
         "sk-" + body(20) + "T3Blbk" + "FJ" + body(20, seed=1),
         "sk-svcacct-" + body(74, TOKEN) + "T3Blbk" + "FJ" + body(74, TOKEN, 1)],
        ["sk-proj-" + body(58) + "T4Blbk" + "FJ" + body(58, seed=1), "sk-" + body(48)],
    ),
    "openrouter-key": (
        ["sk-or-v1-" + body(64, HEX)],
        ["sk-or-v1-" + body(63, HEX), "sk-or-v1-" + "x" * 64],
    ),
    "anthropic-key": (
        ["sk-ant-api03-" + body(93, TOKEN) + "AA", "sk-ant-admin01-" + body(93, TOKEN) + "AA"],
        ["sk-ant-api03-" + body(93, TOKEN) + "BB", "sk-ant-api03-" + body(60, TOKEN) + "AA"],
    ),
    "slack-bot-token": (
        ["xoxb-" + digits(12) + "-" + digits(13) + "-" + body(24)],
        ["xoxb-" + "x" * 10 + "-" + "x" * 11 + "-" + "x" * 24, "xoxb-" + "x" * 4],
    ),
    "slack-user-token": (
        ["xoxp-" + digits(11) + "-" + digits(10) + "-" + digits(11) + "-" + body(32, HEX),
         "xoxe-" + digits(13) + "-" + digits(13) + "-" + digits(13) + "-" + body(32, HEX)],
        ["xoxp-" + digits(10), "xoxp-" + "-".join(["X" * 10] * 3) + "-" + "X" * 32],
    ),
    "slack-legacy-token": (
        ["xoxs-" + "-".join([digits(10), digits(10, 1), digits(10, 2)]) + "-" + body(10, HEX),
         "xoxo-" + "-".join([digits(6), digits(6, 1), digits(6, 2)]) + "-" + body(18, HEX)],
        ["photos/2019-14-xoxo-" + "party-2.jpg"],
    ),
    "slack-legacy-bot-token": (
        ["xoxb-" + digits(12) + "-" + body(24)],
        ["xoxb-" + digits(5) + "-wxyz987", "xoxb-" + "My_Bot_Token"],
    ),
    "slack-workspace-token": (
        ["xoxa-2-" + body(12), "xoxr-" + body(12)],
        ["https://example.org/xoxa-" + "team/xoxa-team.io"],
    ),
    "slack-app-token": (
        ["xapp-1-A" + digits(10) + "-" + digits(13) + "-" + body(64, HEX)],
        ["xapp-1-x"],
    ),
    "slack-config-token": (
        ["xoxe.xoxp-1-" + body(163)],
        ["xoxe.xoxp-1-" + "PutYourConfig" + "TokenHere"],
    ),
    "slack-config-refresh-token": (
        ["xoxe-1-" + body(146)],
        ["xoxe-1-" + "x" * 5],
    ),
    "slack-webhook": (
        ["https://hooks.slack.com/services/T" + body(8, UPPER) + "/B" + body(8, UPPER) + "/"
         + body(24), "hooks.slack.com/workflows/" + body(44)],
        ["https://hooks.slack.com/services/", "https://hooks.slack.com/services/T123/B456"],
    ),
    "stripe-secret-key": (
        ["sk_live_" + body(24), "rk_prod_" + body(99), "sk_test_" + body(30, seed=1)],
        ["pk_live_" + body(24), "mask_live_" + body(30), "sk_live_" + "x" * 24],
    ),
    "google-api-key": (
        ["AIza" + body(35, TOKEN)],
        ["AIza" + "b" * 35, "AIza" + body(35) + "abcd", "GW" + "AIza" + body(35),
         "AIZA" + body(35, UPPER)],
    ),
    "jwt": (
        [jwt({"alg": "HS256", "typ": "JWT"}, {"sub": "1", "n": body(8)}, body(43, TOKEN)),
         jwt({"alg": "HS256"}, {"sub": body(6)}, None),
         jwt({"alg": "none"}, {"sub": "test"}, "")],
        [jwt({"alg": "HS256"}, {"sub": "1"}, None).split(".")[0],
         "eyJ" + body(20) + ".eyJ" + body(20) + "." + body(20)],
    ),
    "private-key": (
        [PEM + "\n" + body(64, ALNUM + "+/") + "\n" + body(40, ALNUM + "+/") + "=\n" + PEM_END,
         "-----BEGIN PGP PRIVATE " + "KEY BLOCK-----\n" + body(64) + "\n-----END PGP PRIVATE "
         + "KEY BLOCK-----", "-----BEGIN EC " + "PRIVATE KEY-----"],
        [PEM + PEM_END, "-----BEGIN PUBLIC KEY-----\n" + body(64) + "\n-----END PUBLIC KEY-----"],
    ),
}  # fmt: skip


def test_every_rule_has_true_and_false_positive_cases() -> None:
    assert set(CASES) == {rule.name for rule in SECRET_RULES}
    assert all(found and left for found, left in CASES.values())


@pytest.mark.parametrize(
    ("name", "value"), [(name, v) for name, (found, _) in CASES.items() for v in found]
)
def test_the_rule_finds_its_secret_whole_inside_a_sentence(name: str, value: str) -> None:
    [rule] = [r for r in SECRET_RULES if r.name == name]
    for text in (value, f"use {value} now", f'{{"token": "{value}"}}', f"line\n{value}\n"):
        spans = list(rule.find(text))
        assert spans, (name, text)
        found = [text[s:e] for s, e, _ in scan(text, [BUILT_IN["api_key"]])]
        assert len(found) == 1 and found[0] in value, (name, text, found)
        # a labelled value is reported without its label
        assert found[0] == value or name == "aws-secret-access-key"


@pytest.mark.parametrize(
    ("name", "value"), [(name, v) for name, (_, left) in CASES.items() for v in left]
)
def test_look_alikes_and_placeholders_are_not_secrets(name: str, value: str) -> None:
    text = f"see {value} here"
    assert scan(text, [BUILT_IN["api_key"]]) == [], (name, value)


def test_entropy_is_bits_per_character() -> None:
    assert entropy("") == 0.0 and entropy("aaaa") == 0.0
    assert entropy("abcd") == 2.0
    assert entropy(body(64, HEX)) > 3.5


def test_the_docs_list_every_rule() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "builtins.md").read_text()
    missing = [rule.name for rule in SECRET_RULES if f"| `{rule.name}` |" not in page]
    assert missing == []
