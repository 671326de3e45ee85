"""Finding sensitive values in text: secrets, e-mail addresses, IBANs, payment cards, US
social security numbers, phone numbers, and custom patterns.

Each built-in detector finds candidates with a linear-time regex and confirms them with the
format's own rules, from the libraries made for them: `python-stdnum` for IBANs (each
country's length and layout, ISO 7064 mod 97 check digits), cards (Luhn) and SSNs (never
issued areas, groups and serials), `phonenumbers` (libphonenumber) for phone numbers. Both
are imported on first use, so `import interlock` stays light. Secrets come from a table of
provider rules in the manner of gitleaks': an exact prefix and length, a boundary at both
ends, an entropy floor and an allow-list of placeholders (`AKIA...EXAMPLE`, `ghp_xxxx...`).

Where findings overlap, a fixed precedence decides, whatever order a config lists kinds in:
secret > email > IBAN > card > SSN > phone > custom kinds. No built-in match starts inside a
token (`DK50 0040 ...` holds no card; `BE71 0961 ...` is an IBAN, not `BE71` and a phone).

Detectors judge a normalised view of the text (`View`), so that what a reader takes for a
value is found however it is spelt: compatibility forms folded (full-width and other
decimal digits to ASCII ones, a full-width `@` to `@`), invisible characters (zero-width spaces and
joiners, soft hyphens, other format characters) left out, every space a space and every
dash a `-`. Findings are mapped back to the original text, invisible characters inside a
value included, so redaction removes the whole value as it was written.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import re
import unicodedata
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

Span = tuple[int, int]


@dataclass(frozen=True)
class Detector:
    """A kind of sensitive value and how to find it.

    `finder` returns the spans of the values in a text; `rank` orders kinds where findings
    overlap (lower wins); `gate`, when given, is a cheap test that is False only for texts
    in which `finder` cannot find anything (a prefilter: it spares the regexes and the
    confirmations a text without, say, enough digits). `Detector.regex("employee_id",
    r"EMP-\\d{6}")` makes one from a pattern.
    """

    kind: str
    finder: Callable[[str], Iterable[Span]]
    rank: int = 100
    gate: Callable[[str], bool] | None = None

    def find(self, text: str) -> Iterator[Span]:
        """The spans of the values of this kind in `text`."""
        if self.gate is not None and not self.gate(text):
            return iter(())
        return iter(self.finder(text))

    @classmethod
    def regex(cls, kind: str, pattern: str | re.Pattern[str], rank: int = 100) -> Detector:
        """A detector whose values are the matches of `pattern` (non-empty ones)."""
        compiled = re.compile(pattern) if isinstance(pattern, str) else pattern

        def finder(text: str) -> Iterator[Span]:
            for match in compiled.finditer(text):
                if match.end() > match.start():
                    yield match.span()

        return cls(kind, finder, rank)


# -- checksums and formats -----------------------------------------------------------------


def luhn(text: str) -> bool:
    """True when the digits of `text` pass the Luhn check (13 to 19 digits)."""
    from stdnum import luhn as _luhn

    digits = "".join(c for c in text if c.isdigit())
    return 13 <= len(digits) <= 19 and _luhn.is_valid(digits)


def iban(text: str) -> bool:
    """True when `text` is an IBAN: a known country, that country's length and layout,
    and check digits that hold (ISO 7064 mod 97-10). Separators are spaces, dashes or
    dots; letters in any case (the check digits do not see case, and neither does a
    reader: `De89 3704 ...` is the IBAN `DE89 3704 ...`)."""
    from stdnum import iban as _iban

    # The country's layout only: national checks (bank registries) refuse real IBANs.
    return bool(_iban.is_valid(text, check_country=False))


@functools.cache
def _iban_length(country: str) -> int:
    """The length of the country's IBANs, 0 for a country without IBANs."""
    from stdnum import numdb

    [(_, info), *_] = numdb.get("iban").info(country.upper() + "00")
    bban = info.get("bban", "") if isinstance(info, dict) else ""
    parts = re.findall(r"(\d+)!?[nac]", bban)
    return 4 + sum(int(n) for n in parts) if parts else 0


def _card(text: str) -> bool:
    """Luhn-valid, and starting as the card networks' numbers do (2-6): a Luhn-valid id
    or timestamp (epoch milliseconds start with 1) is not taken for a card."""
    return text[0] in "23456" and luhn(text)


def _ssn(text: str) -> bool:
    from stdnum.us import ssn

    return bool(ssn.is_valid(text))


def entropy(text: str) -> float:
    """Shannon entropy of `text` in bits per character."""
    if not text:
        return 0.0
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


# -- secrets -------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(
    r"(?i)x{6,}|\*{4,}|#{4,}|<[a-z_ -]+>|your[_-]?(?:api[_-]?)?(?:key|token|secret)"
    r"|(?:key|token|secret)[_-]?here"
)
"""What a value written to be replaced looks like (`ghp_xxxx...`, `<your-key>`)."""


@dataclass(frozen=True)
class SecretRule:
    """One provider's credential format, in the manner of a gitleaks rule.

    `keywords` (lower case) are what a text must contain for `pattern` to be tried at
    all, which keeps a scan cheap. `pattern` carries the exact prefix, length and a boundary
    at both ends (a `value`
    group, when present, is the secret within a labelled match). A match is a secret when
    its value's Shannon entropy reaches `min_entropy` (bits per character), it does not look
    like a placeholder (unless `placeholders` is off) and `allow` (this rule's known
    examples) does not match it; `check` adds a structural test.
    """

    name: str
    provider: str
    keywords: tuple[str, ...]
    pattern: re.Pattern[str]
    min_entropy: float = 3.0
    allow: re.Pattern[str] | None = None
    placeholders: bool = True
    check: Callable[[str], bool] | None = None

    def find(self, text: str) -> Iterator[Span]:
        """The spans of this rule's secrets in `text`."""
        lowered = text.lower()
        if any(keyword in lowered for keyword in self.keywords):
            yield from self.matches(text)

    def matches(self, text: str) -> Iterator[Span]:
        """The spans of this rule's secrets in `text`, its keywords not looked for first."""
        for match in self.pattern.finditer(text):
            group = "value" if "value" in self.pattern.groupindex else 0
            value = match.group(group)
            if self.accepts(value):
                yield match.span(group)

    def accepts(self, value: str) -> bool:
        """Whether a matched value is a secret (entropy, placeholders, allow-list)."""
        if entropy(value) < self.min_entropy:
            return False
        if self.placeholders and _PLACEHOLDER.search(value):
            return False
        if self.allow is not None and self.allow.search(value):
            return False
        return self.check is None or self.check(value)


def _jwt(value: str) -> bool:
    """A JWT's header and payload are base64url-encoded JSON objects."""
    for part in value.split(".")[:2]:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        except (binascii.Error, ValueError):
            return False
        if not isinstance(decoded, dict):
            return False
    return True


def _rule(
    name: str, provider: str, keywords: tuple[str, ...], pattern: str, **options: Any
) -> SecretRule:
    return SecretRule(name, provider, keywords, re.compile(pattern), **options)


# Boundaries: `(?<!\w)` before, `(?![\w-])` after (a longer token is another token). Where
# a value's alphabet is narrower than a word's, the boundary is its alphabet: an AWS key id
# (upper case and digits) glued to a lower-case word or after `%3D`, a GitHub or Stripe
# token after `_`, are still found; inside a longer run of their own characters they are not.
SECRET_RULES: tuple[SecretRule, ...] = (
    _rule("aws-access-key-id", "AWS", ("akia", "asia", "abia", "acca", "a3t"),
          r"(?:(?<![A-Z0-9])|(?<=%[0-9A-F]{2}))"
          r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Z0-9])",
          allow=re.compile(r"EXAMPLE$")),
    _rule("aws-secret-access-key", "AWS", ("aws",),
          r"(?i:aws[\w.-]{0,20}?(?:secret|key|token)[\w.-]{0,20}?)['\"]?\s{0,4}(?:=>|:=|[:=])"
          r"\s{0,4}['\"`]?(?P<value>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"),
    _rule("github-token", "GitHub", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
          r"(?<![A-Za-z0-9])gh[pousr]_[A-Za-z0-9]{36}(?![A-Za-z0-9])"),
    _rule("github-fine-grained-pat", "GitHub", ("github_pat_",),
          r"(?<!\w)github_pat_\w{82}(?!\w)"),
    _rule("gitlab-token", "GitLab",
          ("glpat-", "gldt-", "glft-", "glffct-", "glsoat-", "glrt-", "glcbt-", "gr1348941"),
          r"(?<!\w)(?:(?:glpat|gldt|glft|glffct|glsoat|glrt|glcbt)-|GR1348941)[\w-]{20,50}"
          r"(?![\w-])"),
    _rule("gitlab-routable-token", "GitLab", ("glpat-", "glrt-"),
          r"(?<!\w)gl(?:pat|rt)-[\w-]{27,300}\.[0-9a-z]{9}(?![\w-])", min_entropy=4.0),
    _rule("gitlab-incoming-mail-token", "GitLab", ("glimt-",),
          r"(?<!\w)glimt-[\w-]{25}(?![\w-])"),
    _rule("gitlab-pipeline-trigger-token", "GitLab", ("glptt-",),
          r"(?<!\w)glptt-[\w-]{40}(?![\w-])"),
    _rule("gitlab-agent-token", "GitLab", ("glagent-",),
          r"(?<!\w)glagent-[\w-]{50,1024}(?![\w-])"),
    _rule("gitlab-oauth-secret", "GitLab", ("gloas-",),
          r"(?<!\w)gloas-[\w-]{64}(?![\w-])"),
    _rule("gitlab-session-cookie", "GitLab", ("_gitlab_session=",),
          r"_gitlab_session=[0-9a-z]{32}(?!\w)"),
    _rule("openai-key", "OpenAI", ("t3blbkfj",),
          r"(?<!\w)sk-(?:(?:proj|svcacct|admin)-)?[\w-]{20,200}T3BlbkFJ[\w-]{20,200}(?![\w-])"),
    _rule("openrouter-key", "OpenRouter", ("sk-or-v1-",),
          r"(?<!\w)sk-or-v1-[0-9a-f]{64}(?!\w)"),
    _rule("anthropic-key", "Anthropic", ("sk-ant-",),
          r"(?<!\w)sk-ant-(?:api03|admin01)-[\w-]{93}AA(?![\w-])"),
    _rule("slack-bot-token", "Slack", ("xoxb-",),
          r"(?<!\w)xoxb-[0-9]{10,13}-[0-9]{10,13}[a-zA-Z0-9-]*(?!\w)", min_entropy=2.0),
    _rule("slack-user-token", "Slack", ("xoxp-", "xoxe-"),
          r"(?<!\w)xox[pe](?:-[0-9]{10,13}){3}-[a-zA-Z0-9-]{28,34}(?![\w-])", min_entropy=2.0),
    _rule("slack-legacy-token", "Slack", ("xoxa-", "xoxb-", "xoxo-", "xoxp-", "xoxr-", "xoxs-"),
          r"(?<!\w)xox[aboprs]-(?:[0-9]+-)+[a-zA-Z0-9]{8,}(?![\w-])", min_entropy=2.0),
    _rule("slack-legacy-bot-token", "Slack", ("xoxb-",),
          r"(?<!\w)xoxb-[0-9]{8,14}-[a-zA-Z0-9]{18,26}(?![\w-])", min_entropy=2.0),
    _rule("slack-workspace-token", "Slack", ("xoxa-", "xoxr-"),
          r"(?<!\w)xox[ar]-(?:\d-)?[0-9a-zA-Z]{8,48}(?![\w-])", min_entropy=2.0),
    _rule("slack-app-token", "Slack", ("xapp-",),
          r"(?i)(?<!\w)xapp-\d-[A-Z0-9]+-\d+-[a-z0-9]+(?![\w-])", min_entropy=2.0),
    _rule("slack-config-token", "Slack", ("xoxe.xoxb-", "xoxe.xoxp-"),
          r"(?i)(?<!\w)xoxe\.xox[bp]-\d-[A-Z0-9]{163,166}(?!\w)", min_entropy=2.0),
    _rule("slack-config-refresh-token", "Slack", ("xoxe-",),
          r"(?i)(?<!\w)xoxe-\d-[A-Z0-9]{146}(?!\w)", min_entropy=2.0),
    # Webhook URLs: the host and path say it all; placeholders kept, as both peers do.
    _rule("slack-webhook", "Slack", ("hooks.slack.com",),
          r"(?<!\w)(?:https?://)?hooks\.slack\.com/(?:services|workflows|triggers)/"
          r"[A-Za-z0-9+/]{40,90}(?![A-Za-z0-9+/])", min_entropy=0.0, placeholders=False),
    _rule("stripe-secret-key", "Stripe",
          ("sk_test_", "sk_live_", "sk_prod_", "rk_test_", "rk_live_", "rk_prod_"),
          r"(?<![A-Za-z0-9])[sr]k_(?:test|live|prod)_[a-zA-Z0-9]{10,99}(?![A-Za-z0-9])",
          min_entropy=2.0),
    _rule("google-api-key", "Google", ("aiza",),
          r"(?<!\w)AIza[\w-]{35}(?![\w-])"),
    _rule("jwt", "JSON Web Token", ("eyj",),
          r"(?<![\w-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{4,}(?:\.[A-Za-z0-9_-]*)?(?![\w-])",
          check=_jwt),
    # A private key: the whole block when it ends, else its first line. An empty block
    # (`BEGIN ... END` with nothing between) holds no key.
    _rule("private-key", "PEM, OpenSSH, PGP", ("-----begin",),
          r"-----BEGIN[ A-Z0-9_]{0,100}PRIVATE KEY(?: BLOCK)?-----(?!-----END)"
          r"(?:[\s\S]{1,16384}?-----END[ A-Z0-9_]{0,100}PRIVATE KEY(?: BLOCK)?-----)?",
          min_entropy=0.0, placeholders=False),
)  # fmt: skip
"""The provider rules behind the `api_key` detector."""


_KEYWORDS = tuple(sorted({keyword for rule in SECRET_RULES for keyword in rule.keywords}))


def _secrets(text: str) -> Iterator[Span]:
    # Each keyword looked for once (several rules share one), and only the rules of those
    # present tried: most texts hold none, and the scan is then these lookups alone.
    lowered = text.lower()
    present = {keyword for keyword in _KEYWORDS if keyword in lowered}
    if present:
        for rule in SECRET_RULES:
            if not present.isdisjoint(rule.keywords):
                yield from rule.matches(text)


# -- personal data ------------------------------------------------------------------------

# A local part (or a quoted one: `"alice smith"@...`), then labels in any script (IDN:
# `exämple.de`) and an ASCII top-level label (also in its `xn--` form): a value glued to
# text in another script ends where the ASCII does.
_EMAIL = re.compile(
    r"(?:(?<![\w.+-])[\w.+-]{1,64}|\"[^\"\\\r\n]{1,64}\")"
    r"@(?:(?:[^\W_]|-){1,63}\.){1,8}[A-Za-z0-9-]{1,63}"
)


def _emails(text: str) -> Iterator[Span]:
    if "@" in text:
        for match in _EMAIL.finditer(text):
            yield match.span()


# Two letters and two digits, then up to 32 letters or digits, each group after a space, a
# dash or a dot: the country says how many belong to the IBAN.
_IBAN = re.compile(r"\d\d(?<=(?<![\w-])[A-Za-z]{2}\d\d)(?:[ .-]?[A-Za-z0-9]){11,32}")
_IBAN_SEPARATORS = " .-"


def _ibans(text: str) -> Iterator[Span]:
    for match in _IBAN.finditer(text):
        begin = match.start() - 2
        candidate = text[begin : match.end()]
        length = _iban_length(candidate[:2])
        if not length:
            continue
        # Where the country's length is reached, counting letters and digits only.
        ends = [i + 1 for i, char in enumerate(candidate) if char not in _IBAN_SEPARATORS]
        if len(ends) < length:
            continue
        end = ends[length - 1]
        # It must end where a group ends: `IL15 0120 6900 0000 3111 012|0` is no IBAN.
        whole = end == len(candidate) or candidate[end] in _IBAN_SEPARATORS
        if whole and iban(candidate[:end]):
            yield begin, begin + end


# Lookbehinds placed after the first character, not before it: the regex engine then skips
# ahead to the next digit (or letter, or keyword) instead of trying every position.
_CARD = re.compile(r"\d(?<![\w-]\d)(?:[ -]?\d){12,18}(?![\w-])")
# Printed in the networks' groups (4-4-4-4, 4-4-4-4-3, 4-6-5, 4-6-4) with one separator
# used throughout: dots, slashes, runs of spaces, ` - `. Not a step of a longer dotted
# or grouped number (a version, an address, a date).
_CARD_GROUPED = re.compile(
    r"\d(?<![\w./-]\d)\d{3}(?P<sep>[ ./-]{1,3})"
    r"(?:\d{4}(?P=sep)\d{4}(?P=sep)\d{4}(?:(?P=sep)\d{3})?|\d{6}(?P=sep)\d{4,5})"
    r"(?![\w-]|[./]\d)(?!(?P=sep)\d)"
)


def _cards(text: str) -> Iterator[Span]:
    seen: set[Span] = set()
    for pattern in (_CARD, _CARD_GROUPED):
        for match in pattern.finditer(text):
            # Spaced or dashed in groups, both patterns match it: checked once.
            if match.span() not in seen and _card(match.group()):
                seen.add(match.span())
                yield match.span()


_SSN = re.compile(r"\d(?<![\w-]\d)\d\d-\d{2}-\d{4}(?![\w-])")

# Digits in groups (spaces, dots, dashes, parentheses), at most 28 characters, then an
# optional extension; not inside a token, nor the tail of a decimal, time or address.
_PHONE = re.compile(
    r"[+(\d](?<![\w+(.,:/-][+(\d])[\d ().-]{6,26}\d\)?"
    r"(?:\s?(?:x|ext\.?|extension)\s?\d{1,6})?(?![\w-]|[.:/]\d)"
)
_DOTTED_QUAD = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
_DATE = re.compile(r"\b\d{4}[-./]\d{1,2}[-./]\d{1,2}\b|\b\d{1,2}[-./]\d{1,2}[-./]\d{4}\b")
_GROUPS = re.compile(r"\d+")
_SSN_LAYOUT = re.compile(r"^\d{3}-\d{2}-\d{4}$")  # an SSN's layout, never a phone's

PHONE_REGIONS = ("US", "GB", "DE", "FR", "IN", "IL", "JP", "BR")
"""Where a number written without `+` and a country code may be from, in the order tried
(libphonenumber checks it against each region's numbering plan)."""


@functools.lru_cache(maxsize=4096)
def _phone_number(candidate: str) -> bool:
    """A number libphonenumber takes for a valid one: with its country code after `+`,
    else in one of `PHONE_REGIONS`."""
    import phonenumbers

    regions: tuple[str | None, ...] = (None,) if candidate.startswith("+") else PHONE_REGIONS
    for region in regions:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return True
    return False


def _phone_shaped(candidate: str) -> bool:
    """9 to 15 digits written as a phone number: with `+`, parentheses or separators (a
    bare run of digits is more often an id or an amount); not an IPv4 address, a date or
    an SSN's layout; dotted groups of 2 to 4 digits (`3.14159265` is a decimal); a long
    group only after a country code."""
    number = re.split(r"\s?(?:x|ext)", candidate, maxsplit=1)[0]
    groups = _GROUPS.findall(number)
    digits = sum(map(len, groups))
    if not 9 <= digits <= 15 or (len(groups) == 1 and not number.startswith("+")):
        return False
    if _DOTTED_QUAD.match(number) or _DATE.search(number) or _SSN_LAYOUT.match(number):
        return False
    if "." in number and not all(2 <= len(g) <= 4 for g in groups):
        return False
    return number.startswith("+") or max(map(len, groups)) <= 8


def _phones(text: str) -> Iterator[Span]:
    for match in _PHONE.finditer(text):
        yield from _confirmed_phones(match.group(), match.start())


def _confirmed_phones(candidate: str, offset: int) -> Iterator[Span]:
    """The phone numbers in one candidate: the whole of it, else (two numbers side by
    side) the longest valid run of its space-separated parts from the left, and so on."""
    if _phone_shaped(candidate) and _phone_number(candidate):
        yield offset, offset + len(candidate)
        return
    cuts = [m.start() for m in re.finditer(r" (?=[\d(+])", candidate)]
    if not cuts or len(cuts) > 8:
        return
    ends = [*cuts, len(candidate)]
    start = 0
    while start < len(candidate):
        for end in [c for c in reversed(ends) if c > start]:
            part = candidate[start:end]
            if _phone_shaped(part) and _phone_number(part):
                yield offset + start, offset + end
                start = end + 1
                break
        else:
            following = [c for c in cuts if c > start]
            if not following:
                return
            start = following[0] + 1


# -- the normalised view ------------------------------------------------------------------

_INVISIBLE = frozenset("\u034f\u115f\u1160\u3164\uffa0")  # joiners and fillers, not Cf


@functools.lru_cache(maxsize=4096)
def _fold(char: str) -> str:
    """What one non-ASCII character is in the normalised view: `""` when invisible."""
    category = unicodedata.category(char)
    if category == "Cf" or char in _INVISIBLE or "\ufe00" <= char <= "\ufe0f":
        return ""  # zero-width spaces and joiners, soft hyphens, bidi marks, selectors
    if category == "Zs":
        return " "
    if category in ("Zl", "Zp"):
        return "\n"
    if category == "Pd" or char == "\u2212":  # dashes, and the minus sign
        return "-"
    digit = unicodedata.decimal(char, None)  # Arabic-Indic, Devanagari, full-width ...
    if digit is not None:
        return str(digit)
    folded = unicodedata.normalize("NFKC", char)  # full-width `@` and letters, `²` -> `2`
    return folded if folded.isascii() else char  # `ä` stays `ä`


@functools.cache
def _changed() -> re.Pattern[str]:
    """A character class of what the view may change: every character of the Basic
    Multilingual Plane that `_fold` changes (about 1,000 in 160 ranges, found once, in some
    30 ms, when the first text that is not ASCII comes), and every astral character (each
    then asked of `_fold`). Finding them is then one regex search in C, not a Python loop
    over every character."""
    ranges: list[list[int]] = []
    for code in range(0x80, 0x10000):
        if 0xD800 <= code < 0xE000:  # surrogates
            continue
        char = chr(code)
        if _fold.__wrapped__(char) == char:  # not through the cache: it would fill it
            continue
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    members = "".join(f"\\u{a:04x}-\\u{b:04x}" for a, b in ranges)
    return re.compile(f"[{members}\\U00010000-\\U0010ffff]")


class View:
    """A text as the detectors judge it, and the way back to the original.

    `text` is the normalised text (see the module documentation); `span` maps a span of it
    to the span of the original that it came from. Plain ASCII texts are their own view.

        >>> view = View("card \\uff14\\uff11\\uff11\\uff11\\u200b1111")
        >>> view.text
        'card 41111111'
        >>> view.span(5, 13)
        (5, 14)
    """

    __slots__ = ("_at", "_from", "_original", "_size", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._original = text
        # One entry per changed character: where its replacement starts in the view, where
        # it is in the original, and how long the replacement is (0: left out).
        self._at: list[int] = []
        self._from: list[int] = []
        self._size: list[int] = []
        if text.isascii():
            return
        parts: list[str] = []
        last = 0  # the original text up to here is in `parts`
        length = 0  # of the view so far
        for match in _changed().finditer(text):
            index = match.start()
            folded = _fold(text[index])
            if folded == text[index]:  # an astral character the view keeps
                continue
            parts.append(text[last:index])
            length += index - last
            self._at.append(length)
            self._from.append(index)
            self._size.append(len(folded))
            parts.append(folded)
            length += len(folded)
            last = index + 1
        if self._at:
            parts.append(text[last:])
            self.text = "".join(parts)

    def _origin(self, index: int) -> int:
        """Where the view's character at `index` comes from in the original text."""
        entry = bisect_right(self._at, index) - 1
        if entry < 0:
            return index
        at, size = self._at[entry], self._size[entry]
        if index < at + size:  # part of a replacement: its whole original character
            return self._from[entry]
        return self._from[entry] + 1 + index - at - size

    def origin(self, index: int) -> int:
        """Where the view's character at `index` comes from in the original text
        (`len(view.text)`: the original's end)."""
        return self._origin(index) if self._at else index

    def squeezed(self) -> str:
        """The original text with each run of invisible characters cut to its first one:
        the same view (the detectors find the same values), at most about twice as long."""
        parts: list[str] = []
        last = 0
        previous = -2  # where the last invisible character (kept or not) is
        for index, size in zip(self._from, self._size, strict=True):
            if size == 0:
                if index == previous + 1:  # a repeat: the text up to it, not it
                    parts.append(self._original[last:index])
                    last = index + 1
                previous = index
        if not parts:
            return self._original
        parts.append(self._original[last:])
        return "".join(parts)

    def span(self, start: int, end: int) -> Span:
        """The original span of the view's `start:end` (not empty), invisible characters
        inside it included."""
        if not self._at:
            return start, end
        return self._origin(start), self._origin(end - 1) + 1


# -- the built-ins, overlaps, redaction ---------------------------------------------------


_ASCII_DIGITS = str.maketrans("", "", "0123456789")
_DIGIT = re.compile(r"\d")


@functools.lru_cache(maxsize=2)  # a scan's text, and one more scanned meanwhile
def _digits(text: str) -> int:
    """How many digits (as `\\d` has them) `text` holds. Every detector of a number asks
    this of the same text, one after another: counted once."""
    if text.isascii():
        return len(text) - len(text.translate(_ASCII_DIGITS))
    return sum(1 for _ in _DIGIT.finditer(text))


def _at_least(digits: int) -> Callable[[str], bool]:
    """A gate: whether a text holds at least `digits` digits."""

    def gate(text: str) -> bool:
        return _digits(text) >= digits

    return gate


def _regex_confirmed(
    pattern: re.Pattern[str], check: Callable[[str], bool]
) -> Callable[[str], Iterator[Span]]:
    def finder(text: str) -> Iterator[Span]:
        for match in pattern.finditer(text):
            if check(match.group()):
                yield match.span()

    return finder


BUILT_IN: Mapping[str, Detector] = {
    d.kind: d
    for d in (
        Detector("api_key", _secrets, rank=0),
        Detector("email", _emails, rank=1),
        # The fewest digits a value of each kind has: its two check digits (an IBAN, whose
        # account part may be letters); 13 (a card, as Luhn is checked); 9 (an SSN; a
        # phone number, as `_phone_shaped` counts them).
        Detector("iban", _ibans, rank=2, gate=_at_least(2)),
        Detector("card", _cards, rank=3, gate=_at_least(13)),
        Detector("ssn", _regex_confirmed(_SSN, _ssn), rank=4, gate=_at_least(9)),
        Detector("phone", _phones, rank=5, gate=_at_least(9)),
    )
}
"""The detectors that come with interlock, by kind, in order of precedence (where findings
overlap, the earlier kind wins: secrets first, phone numbers last)."""


def detectors(kinds: list[str], custom: Mapping[str, str]) -> list[Detector]:
    """The detectors for `kinds`: built-in ones by name, custom ones from `custom`
    (kind -> regex). Raises `ValueError` naming an unknown kind or a bad regex."""
    chosen = []
    for kind in kinds:
        if kind in custom:
            try:
                # Custom kinds rank after the built-ins, among themselves by name.
                rank = 100 + sorted(custom).index(kind)
                chosen.append(Detector.regex(kind, custom[kind], rank))
            except re.error as error:
                raise ValueError(f"custom detector {kind!r}: not a regex: {error}") from None
        elif kind in BUILT_IN:
            chosen.append(BUILT_IN[kind])
        else:
            known = ", ".join([*BUILT_IN, *custom])
            raise ValueError(f"no detector {kind!r}; known: {known}")
    return chosen


def scan(text: str, chosen: list[Detector], view: View | None = None) -> list[tuple[int, int, str]]:
    """What the `chosen` detectors find: (start, end, kind), sorted by position.

    The detectors judge the normalised `View` of `text` (pass `view` when you have it); the
    spans returned are the original text's. Overlaps are settled by precedence
    (`Detector.rank`), not by the order of `chosen`; the built-in kinds that outrank a
    chosen one are looked for too, so that a value of theirs is not reported as a lesser
    kind (an IBAN's digits as a phone number), though only the chosen kinds are returned.
    """
    if not text or not chosen:
        return []
    view = View(text) if view is None else view
    lowest = max(d.rank for d in chosen)
    running = {d.kind: d for d in chosen}
    for d in BUILT_IN.values():
        if d.rank < lowest:
            running.setdefault(d.kind, d)
    candidates = sorted(
        (d.rank, start, -end, d.kind)
        for d in running.values()
        for start, end in d.find(view.text)
        if end > start
    )
    taken: list[tuple[int, int, str]] = []
    for _, start, negative_end, kind in candidates:
        end = -negative_end
        if all(end <= s or start >= e for s, e, _ in taken):
            taken.append((start, end, kind))
    wanted = {d.kind for d in chosen}
    return sorted((*view.span(s, e), kind) for s, e, kind in taken if kind in wanted)


def redact(text: str, found: list[tuple[int, int, str]], replacement: str) -> str:
    """`text` with each finding replaced by `replacement` (`{kind}` names its kind)."""
    parts = []
    last = 0
    for start, end, kind in found:
        parts.append(text[last:start])
        parts.append(replacement.replace("{kind}", kind))
        last = end
    parts.append(text[last:])
    return "".join(parts)
