"""Finding sensitive values in text: e-mail addresses, phone numbers, payment cards,
IBANs, US social security numbers, API keys and secrets, and custom patterns.

Each detector is a regex plus, where the format has one, a checksum (Luhn for cards,
ISO 7064 mod 97 for IBANs), so that a long number is not taken for a card by its shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Detector:
    """A kind of sensitive value: how to find candidates and how to confirm one.

    `confirm` takes a candidate's text and returns how many of its characters are the
    value (0: none): a checksum may hold for a shorter prefix of a greedy match.
    """

    kind: str
    pattern: re.Pattern[str]
    confirm: Callable[[str], int] = len

    def find(self, text: str) -> Iterator[tuple[int, int]]:
        """The spans of the confirmed values in `text`."""
        for match in self.pattern.finditer(text):
            length = self.confirm(match.group())
            if length:
                yield match.start(), match.start() + length


def _all_or_nothing(check: Callable[[str], bool]) -> Callable[[str], int]:
    return lambda text: len(text) if check(text) else 0


def luhn(text: str) -> bool:
    """True when the digits of `text` pass the Luhn check (13 to 19 digits)."""
    digits = [int(c) for c in text if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for position, digit in enumerate(reversed(digits)):
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def iban(text: str) -> bool:
    """True when `text` is an IBAN whose check digits hold (ISO 7064 mod 97-10)."""
    compact = text.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34 or not compact.isalnum():
        return False
    moved = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in moved)
    return int(number) % 97 == 1


def _iban_prefix(text: str) -> int:
    """The longest prefix of `text` (ending on a whole group) that is an IBAN: what follows
    an IBAN (`EUR 100`, `BIC ...`) is often shaped like more of it."""
    ends = [i for i in range(len(text), 0, -1) if i == len(text) or text[i] == " "]
    for end in ends:
        if iban(text[:end]):
            return end
    return 0


def _card(text: str) -> bool:
    """Luhn-valid, and starting as the card networks' numbers do (2-6): a Luhn-valid id
    or timestamp (epoch milliseconds start with 1) is not taken for a card."""
    return text[0] in "23456" and luhn(text)


_DOTTED_QUAD = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")


def _phone(text: str) -> bool:
    """9 to 15 digits, written as a phone number: with a `+`, parentheses or separators
    (a bare run of digits is more often an id, an amount or a decimal part); not an IPv4
    address."""
    digits = sum(c.isdigit() for c in text)
    written = any(c in text for c in "+( .-")
    return 9 <= digits <= 15 and written and not _DOTTED_QUAD.match(text)


_API_KEYS = "|".join(
    [
        r"AKIA[0-9A-Z]{16}",  # AWS access key id
        r"(?i:aws_secret_access_key)\s*[=:]\s*[A-Za-z0-9/+]{40}",  # and its secret, labelled
        r"gh[pousr]_[A-Za-z0-9]{36,}",  # GitHub tokens
        r"github_pat_[A-Za-z0-9_]{40,}",
        r"sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}",  # OpenAI, Anthropic
        r"xox[abprs]-[A-Za-z0-9-]{10,}",  # Slack
        r"AIza[0-9A-Za-z_-]{35}",  # Google API key
        r"(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{24,}",  # Stripe
        r"glpat-[0-9A-Za-z_-]{20}",  # GitLab
        r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}",  # a JWT
        # A private key: the whole block when it ends, else its first line.
        r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----"
        r"(?:[A-Za-z0-9+/=\s:,-]{0,16384}?-----END (?:[A-Z]+ )*PRIVATE KEY-----)?",
    ]
)

BUILT_IN: Mapping[str, Detector] = {
    d.kind: d
    for d in (
        Detector("api_key", re.compile(rf"(?<![\w-])(?:{_API_KEYS})")),
        # Bounded parts, and no start inside a word: linear time on long texts.
        Detector(
            "email",
            re.compile(
                r"(?<![\w.+-])[\w.+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,8}"
            ),
        ),
        Detector(
            "card",
            re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"),
            _all_or_nothing(_card),
        ),
        Detector(
            "iban",
            re.compile(r"(?<![\w])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){11,30}(?!\w)"),
            _iban_prefix,
        ),
        Detector(
            "ssn",
            re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])"),
        ),
        Detector(
            "phone",
            re.compile(
                r"(?<![\w+(.,:])(?:\+\d{1,3}[ .-]?)?\(?\d{2,4}\)?(?:[ .-]?\d{2,4}){2,4}"
                r"(?![\w-]|[.:]\d)"
            ),
            _all_or_nothing(_phone),
        ),
    )
}
"""The detectors that come with interlock, by kind, in the order they are tried where
matches overlap (secrets first; cards before phone numbers, which a card number could
otherwise pass for)."""


def detectors(kinds: list[str], custom: Mapping[str, str]) -> list[Detector]:
    """The detectors for `kinds`: built-in ones by name, custom ones from `custom`
    (kind -> regex). Raises `ValueError` naming an unknown kind or a bad regex."""
    chosen = []
    for kind in kinds:
        if kind in custom:
            try:
                chosen.append(Detector(kind, re.compile(custom[kind])))
            except re.error as error:
                raise ValueError(f"custom detector {kind!r}: not a regex: {error}") from None
        elif kind in BUILT_IN:
            chosen.append(BUILT_IN[kind])
        else:
            known = ", ".join([*BUILT_IN, *custom])
            raise ValueError(f"no detector {kind!r}; known: {known}")
    return chosen


def scan(text: str, chosen: list[Detector]) -> list[tuple[int, int, str]]:
    """Where each detector finds something: (start, end, kind), earlier detectors winning
    where matches overlap; sorted by position."""
    found: list[tuple[int, int, str]] = []
    for detector in chosen:
        for start, end in detector.find(text):
            if all(end <= s or start >= e for s, e, _ in found):
                found.append((start, end, detector.kind))
    return sorted(found)


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
