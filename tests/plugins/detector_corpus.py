"""Scoring the content-policy detectors on the peers' public test cases.

The corpus (`pii_peer_cases.json`, cases from the test suites of Presidio, scrubadub,
llm-guard, detect-secrets and gitleaks) lies beside the project, in `shared/corpora/` next to
the repository's root; it is read where it lies, never copied in. A fresh clone has none:
`load_cases()` returns None and the test that needs it skips.

Matching rule: a detection and an expected span of the same kind match when their
intersection over union is at least 0.5 — a detection must cover most of the value, and not
much more (`DK⟦card⟧` inside an IBAN, or a phone number swallowing an IBAN's tail, do not
count). Per kind, over the cases that check that kind: recall = expected spans matched by
some detection / expected spans; precision = detections matching some expected span / all
detections. Cases a peer marks `weak` (the peer itself fails them) or `design` for a kind (a
peer's judgement a detector may reasonably differ from) are scored separately for that kind.

Run it as a script to print the table that docs/builtins.md shows:
`python -m tests.plugins.detector_corpus`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpora" / "pii_peer_cases.json"

Span = tuple[int, int]
Finder = Callable[[str], Iterable[tuple[int, int, str]]]


@dataclass(frozen=True)
class Case:
    """One corpus case, its text decoded."""

    id: str
    text: str
    checked: tuple[str, ...]
    expect: Mapping[str, tuple[Span, ...]]
    separate: frozenset[str]  # kinds scored apart: `weak`, or `design` for that kind


@dataclass
class Score:
    """Counts for one kind over one group of cases."""

    cases: int = 0
    expected: int = 0
    found: int = 0  # expected spans some detection matched
    detections: int = 0
    correct: int = 0  # detections matching some expected span
    misses: list[str] = field(default_factory=list)  # "id: what", for reading failures

    @property
    def recall(self) -> float:
        return self.found / self.expected if self.expected else 1.0

    @property
    def precision(self) -> float:
        return self.correct / self.detections if self.detections else 1.0


def load_cases(path: Path = CORPUS) -> list[Case] | None:
    """The corpus's cases, or None when the file is not there."""
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    cases = []
    for raw in data["cases"]:
        separate = set(raw.get("design") or {})
        if raw.get("weak"):
            separate.update(raw["checked"])
        cases.append(
            Case(
                id=raw["id"],
                text=base64.b64decode(raw["text_b64"]).decode("utf-8"),
                checked=tuple(raw["checked"]),
                expect={k: tuple((a, b) for a, b in v) for k, v in raw["expect"].items()},
                separate=frozenset(separate),
            )
        )
    return cases


def _matches(a: Span, b: Span) -> bool:
    overlap = min(a[1], b[1]) - max(a[0], b[0])
    if overlap <= 0:
        return False
    union = max(a[1], b[1]) - min(a[0], b[0])
    return overlap / union >= 0.5


def score(
    cases: Sequence[Case], find: Finder, kinds: Iterable[str]
) -> tuple[dict[str, Score], dict[str, Score]]:
    """Per kind: the score on the cases that count, and on those scored apart."""
    kinds = list(kinds)
    main = {k: Score() for k in kinds}
    apart = {k: Score() for k in kinds}
    for case in cases:
        found = list(find(case.text))
        for kind in case.checked:
            if kind not in main:
                continue
            board = apart[kind] if kind in case.separate else main[kind]
            expected = case.expect.get(kind, ())
            detected = [(s, e) for s, e, k in found if k == kind]
            board.cases += 1
            board.expected += len(expected)
            board.detections += len(detected)
            for span in expected:
                if any(_matches(span, d) for d in detected):
                    board.found += 1
                else:
                    board.misses.append(f"{case.id}: missed {case.text[span[0] : span[1]]!r}")
            for d in detected:
                if any(_matches(d, span) for span in expected):
                    board.correct += 1
                else:
                    board.misses.append(f"{case.id}: wrongly {case.text[d[0] : d[1]]!r}")
    return main, apart


def table(main: Mapping[str, Score], apart: Mapping[str, Score]) -> str:
    """The scores as a Markdown table."""
    rows = [
        "| kind | recall | precision | cases | expected | detections "
        "| weak/design cases: recall, precision |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, s in main.items():
        a = apart[kind]
        aside = f"{a.cases}: {a.recall:.2f}, {a.precision:.2f}" if a.cases else "-"
        rows.append(
            f"| `{kind}` | {s.recall:.2f} | {s.precision:.2f} | {s.cases} | {s.expected} "
            f"| {s.detections} | {aside} |"
        )
    return "\n".join(rows)


def _main() -> None:
    import sys

    from interlock.plugins._detectors import BUILT_IN, scan

    cases = load_cases()
    if cases is None:
        raise SystemExit(f"no corpus at {CORPUS}")
    chosen = list(BUILT_IN.values())
    main, apart = score(cases, lambda text: scan(text, chosen), BUILT_IN)
    print(table(main, apart))
    if "-v" in sys.argv:
        for kind, s in [*main.items(), *((f"{k} (apart)", v) for k, v in apart.items())]:
            for miss in s.misses:
                print(f"{kind}: {miss}")


if __name__ == "__main__":
    _main()
