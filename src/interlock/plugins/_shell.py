"""Shell commands as the simple commands they run, for `tool_guard`.

`analyse_script(text)` parses a command line with tree-sitter-bash and returns every simple
command it would run: in pipelines and lists, in `$( )`, backticks, `<( )`, subshells,
function bodies and here-documents, in the scripts given to `bash -c`, `sh -c`, `eval`,
`su -c`, `trap`, `watch`, `flock -c`, `script -c` and `env -S`, the commands run by
`find -exec`, commands given in options (`tar -I`, `rsync -e`, `git rebase -x`, ...), and
through wrappers (`sudo`, `doas`, `env`, `command`, `exec`, `nohup`, `time`, `nice`,
`timeout`, `xargs`, `runuser`, `setpriv`, `prlimit`, ...). Declarations (`declare`, `export`,
`local`, `readonly`, `unset`) are commands too. `analyse_argv(words)` does the same for an
argument vector (`["bash", "-lc", "..."]`).

Before parsing, line continuations (backslash-newline) are removed as bash removes them;
brace expansion in words is expanded (`rm {-r,-f} x` is `rm -r -f x`).

Each `Command` has its program's basename, its words as they are known before it runs
(`None` for a word that only the shell knows: a variable, a substitution), its flags
normalised (`-rf` = `-fr` = `-r -f` = `--recursive --force` = `--rec --f`) and the paths it
writes, through redirections or its arguments (`tee`, `cp`, `dd of=`), normalised
(`//dev/./sda` = `/dev/sda`). What cannot be judged from the text is an `Opaque` part with
the reason: anything bash could run that the analysis did not turn into a judged command,
such as a program from a variable, a shell or an interpreter reading its commands from its
input, inline code (`python -c`, `sed e`, `awk system()`), substitution text the parser did
not read (backticks in a here-document), arithmetic on values not known to be numbers
(bash runs `a[$(cmd)]` inside arithmetic), `${x@P}`, aliases, a program or script run from
a file the same text writes (`cp /bin/rm x; ./x`), and text longer than
`MAX_CHARS` or that does not parse.

The analysis is kept in private modules of one concept each: `_shell_results` (what it
returns), `_shell_syntax` (the parser, word values, redirections), `_shell_braces` (brace
expansion), `_shell_arithmetic` (arithmetic and the variables it may read), `_shell_walk` (the
walk over a parsed script, wrappers, backticks re-read as bash reads them), `_shell_runs`
(what programs run from their arguments), `_shell_options` (commands named in options or
read from the input: `tar --to-command`, `ssh -o ProxyCommand=`, `gdb -ex`, `vim -c`, ...),
`_shell_git` (what git subcommands run), `_shell_writes` (files written through arguments)
and `_shell_programs` (tables about programs). tree-sitter and its bash grammar are imported on
first use; the parser is kept per thread.
"""

from __future__ import annotations

import functools
import shlex
from collections.abc import Sequence

from ._shell_braces import MAX_BRACE_WORDS
from ._shell_programs import normalise_flags
from ._shell_results import Analysis, Command, Opaque, basename, short
from ._shell_walk import MAX_COMMANDS, MAX_DEPTH, Collector

__all__ = [
    "MAX_BRACE_WORDS",
    "MAX_CHARS",
    "MAX_COMMANDS",
    "MAX_DEPTH",
    "Analysis",
    "Command",
    "Opaque",
    "analyse_argv",
    "analyse_script",
    "basename",
    "normalise_flags",
]

MAX_CHARS = 65_536  # longer command text is opaque: parsing cost grows with it


@functools.lru_cache(maxsize=512)
def analyse_script(text: str) -> Analysis:
    """Every simple command `text` runs as a shell script, and what cannot be judged."""
    collector = Collector()
    if len(text) > MAX_CHARS:
        collector.opaque.append(Opaque(short(text), f"longer than {MAX_CHARS} characters"))
    else:
        collector.script(text, 0)
    return collector.result()


def analyse_argv(argv: Sequence[str]) -> Analysis:
    """The commands an argument vector runs, as `analyse_script` finds them in a script."""
    collector = Collector()
    if not argv:
        collector.opaque.append(Opaque("[]", "an empty argument list"))
    elif sum(len(word) + 1 for word in argv) > MAX_CHARS:
        collector.opaque.append(Opaque(short(shlex.join(argv)),
                                       f"longer than {MAX_CHARS} characters"))  # fmt: skip
    else:
        collector.argv(list(argv), shlex.join(argv), (), False, 0)
    return collector.result()
