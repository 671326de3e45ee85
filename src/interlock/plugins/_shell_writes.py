"""The files a command writes through its arguments, and paths as the kernel reads them.

`tee F`, `cp A F`, `dd of=F`, `sort -o F`, `curl -o F`, `wget -O F`, `find -fprint F`, ...:
the walk (`_shell_walk`) adds these to the files a command writes through redirections, so
that a rule on written files (`writes: [/dev/sd*]`) sees every way of writing one.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence

from ._shell_programs import Options, parse_options

__all__ = ["normal_path", "written_by"]

_SLASHES = re.compile(r"/{2,}")


def normal_path(path: str | None) -> str | None:
    """An absolute path with `//`, `/./` and `..` resolved as the kernel would: `//dev/./sda`
    -> `/dev/sda`. Relative paths are kept as written."""
    if path is None or not path.startswith("/"):
        return path
    return posixpath.normpath(_SLASHES.sub("/", path)).replace("//", "/")


# Programs that write files named in options or operands: how they read their options, the
# options naming a written file, and which operands are written ("all", "second", "").
_WRITERS: dict[str, tuple[Options, frozenset[str], str]] = {
    "sort": (Options("kotST", frozenset({"--output", "--key", "--field-separator",
                                         "--buffer-size", "--temporary-directory"})),
             frozenset({"-o", "--output"}), ""),
    "curl": (Options("AbcCdDeEFhHKmorTuUwxXyYzQt", frozenset({"--output", "--config",
                                                              "--dump-header", "--cookie-jar",
                                                              "--trace", "--trace-ascii",
                                                              "--stderr"})),
             frozenset({"-o", "--output", "-D", "--dump-header", "-c", "--cookie-jar",
                        "--trace", "--trace-ascii", "--stderr"}), ""),
    "wget": (Options("oaeiBtOTwQPUlARDIX", frozenset({"--output-document", "--output-file",
                                                       "--append-output", "--directory-prefix"})),
             frozenset({"-O", "--output-document", "-o", "--output-file", "-a",
                        "--append-output"}), ""),
    "truncate": (Options("sr", frozenset({"--size", "--reference"})), frozenset(), "all"),
    "uniq": (Options("fsw", frozenset({"--skip-fields", "--skip-chars", "--check-chars"})),
             frozenset(), "second"),
}  # fmt: skip


def written_by(program: str, args: Sequence[str | None]) -> list[str | None]:
    """Files a program writes through its arguments (`tee F`, `cp A F`, `dd of=F`)."""
    if program == "tee":
        return [w for w in args if w is None or not w.startswith("-") or w == "-"]
    if program in ("cp", "mv", "install", "ln", "ddrescue", "rsync"):
        start, options = parse_options(
            Options("tSVbm", frozenset({"--target-directory", "--suffix", "--backup"})),
            args,
            permute=True,
        )
        targets = [v for o, v in options if o in ("-t", "--target-directory")]
        if targets:
            return targets
        operands = [w for w in args[start or 0 :] if w is None or not w.startswith("-")]
        return operands[-1:] if len(operands) > 1 else []
    if program == "dd":
        return [w.split("=", 1)[1] for w in args if w is not None and w.lower().startswith("of=")]
    spec = _WRITERS.get(program)
    if spec is not None:
        spelling, outputs, operand = spec
        start, found = parse_options(spelling, args, permute=True)
        written = [value for option, value in found if option in outputs]
        operands = [w for w in args[start or 0 :] if w is None or not w.startswith("-")]
        if operand == "all":
            written += operands
        elif operand == "second" and len(operands) > 1:
            written.append(operands[1])
        return written
    if program == "find":
        writes: list[str | None] = []
        for index, word in enumerate(args):
            if word in ("-fls", "-fprint", "-fprint0", "-fprintf"):
                writes.append(args[index + 1] if index + 1 < len(args) else None)
        return writes
    return []
