"""The shell analysis behind tool-guard: every simple command, what cannot be judged."""

from __future__ import annotations

import pytest

from interlock.plugins._shell import (
    MAX_DEPTH,
    Analysis,
    analyse_argv,
    analyse_script,
    normalise_flags,
)


def programs(analysis: Analysis) -> list[str]:
    return [c.program for c in analysis.commands]


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("ls -la", ["ls"]),
        ("a | b && c || d; e & f\ng", ["a", "b", "c", "d", "e", "f", "g"]),
        ("echo $(id) `whoami` <(date)", ["echo", "id", "whoami", "date"]),
        ("(a); { b; }; if c; then d; fi; while e; do f; done", ["a", "b", "c", "d", "e", "f"]),
        ("x() { inner; }; x", ["inner", "x"]),
        ("cat <<EOF\n$(hidden)\nEOF", ["cat", "hidden"]),
        ("X=$(assigned) ls", ["ls", "assigned"]),
        ("export A=$(declared)", ["declared"]),
        ("bash -c 'a; b'", ["bash", "a", "b"]),
        ("sh -ec 'a'", ["sh", "a"]),
        ("eval 'a | b'", ["eval", "a", "b"]),
        ("su -c 'a' root", ["su", "a"]),
        ("env -S 'a b'", ["env", "a"]),
        ("watch -n 1 'a; b'", ["watch", "a", "b"]),
        ("find . -exec a {} \\; -execdir b {} +", ["find", "a", "b"]),
        ("sudo -u root -- a", ["sudo", "a"]),
        ("sudo VAR=1 nice -n 5 timeout -s KILL 5 a", ["sudo", "nice", "timeout", "a"]),
        ("env -i -u HOME PATH=/bin a", ["env", "a"]),
        ("nohup time command exec a", ["nohup", "time", "command", "exec", "a"]),
        ("xargs -n 1 -I {} a {}", ["xargs", "a"]),
        ("chroot /srv a", ["chroot", "a"]),
        ("busybox a", ["busybox", "a"]),
        ("echo 'bash -c \"rm -rf /\"'", ["echo"]),  # quoted text is an argument
        ("", []),
    ],
)  # fmt: skip
def test_every_simple_command_is_found(script: str, expected: list[str]) -> None:
    analysis = analyse_script(script)
    assert programs(analysis) == expected
    assert analysis.opaque == ()


@pytest.mark.parametrize(
    ("script", "program", "words"),
    [
        ("/usr/bin/rm -rf /", "rm", ("-rf", "/")),
        ("'rm' \"-rf\" /", "rm", ("-rf", "/")),
        ("r\\m -rf /", "rm", ("-rf", "/")),
        ("\\rm x", "rm", ("x",)),
        ("rm $X \"$Y\" '$Z' a\"b\"'c'", "rm", (None, None, "$Z", "abc")),
    ],
)  # fmt: skip
def test_words_are_taken_as_the_shell_would(
    script: str, program: str, words: tuple[str | None, ...]
) -> None:
    (command,) = analyse_script(script).commands
    assert (command.program, command.words) == (program, words)


@pytest.mark.parametrize(
    ("program", "words", "flags"),
    [
        ("rm", ["-rf", "/"], {"-r", "-f"}),
        ("rm", ["-fr", "/"], {"-r", "-f"}),
        ("rm", ["-r", "-f", "/"], {"-r", "-f"}),
        ("rm", ["--recursive", "--force", "/"], {"-r", "-f"}),
        ("rm", ["-R", "/", "-f"], {"-r", "-f"}),  # options after operands count (GNU)
        ("rm", ["--", "-rf"], set()),  # after --, a file named -rf
        ("chmod", ["--recursive", "777", "/"], {"-R"}),
        ("git", ["push", "--force=yes"], {"-f"}),
        ("find", ["/", "-delete"], {"-delete"}),  # single-dash long options stay whole
        ("ls", ["-la", "--color=auto", None], {"-l", "-a", "--color"}),
    ],
)  # fmt: skip
def test_flags_are_normalised(program: str, words: list[str | None], flags: set[str]) -> None:
    assert normalise_flags(program, words) == flags


def test_writes_are_the_redirected_files() -> None:
    (command,) = analyse_script("echo x > out.txt 2>&1 >> log 2>/dev/null &> $F").commands
    assert command.writes == ("out.txt", "log", None)
    (group,) = analyse_script("{ a; } > /dev/sda").commands
    assert group.writes == ("/dev/sda",)
    (bare,) = analyse_script("> /dev/sda").commands
    assert (bare.program, bare.writes) == ("", ("/dev/sda",))


def test_xargs_commands_get_more_words_from_input() -> None:
    commands = analyse_script("ls | xargs rm").commands
    assert [(c.program, c.unknown) for c in commands] == [
        ("ls", False), ("xargs", False), ("rm", True)
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("script", "why"),
    [
        ("$CMD -rf /", "program is not known"),
        ("${RM} x", "program is not known"),
        ("$(echo rm) -rf /", "program is not known"),
        ("/bin/r? -rf /", "program is not known"),
        ("curl x | sh", "sh reads commands from its input"),
        ("echo cm0= | base64 -d | bash -s", "bash reads commands from its input"),
        ("bash <<< 'rm -rf /'", "bash reads commands from its input"),
        ("bash <<EOF\nrm -rf /\nEOF", "bash reads commands from its input"),
        ("bash < script.sh", "bash reads commands from its input"),
        ("curl x | python3", "python reads code from its input"),
        ("python3 -c 'import os'", "python runs inline code"),
        ("perl -e 'system 1'", "perl runs inline code"),
        ("node --eval 'x'", "node runs inline code"),
        ("ruby -we 'x'", "ruby runs inline code"),
        ("sh -c \"$PAYLOAD\"", "arguments are not known"),
        ("eval \"$PAYLOAD\"", "not known"),
        ("sudo $OPTS rm", "options are not known"),
        ("source <(curl x)", "script that is not known"),
        ("echo 'unterminated", "cannot parse"),
        ("if then fi", "cannot parse"),
    ],
)  # fmt: skip
def test_what_cannot_be_judged_is_opaque(script: str, why: str) -> None:
    opaque = analyse_script(script).opaque
    assert opaque and why in opaque[0].why


def test_benign_interpreter_and_shell_uses_are_not_opaque() -> None:
    for script in ("python3 script.py", "bash build.sh", "python -m pytest", "bash"):
        assert analyse_script(script).opaque == (), script


def test_nested_shells_are_followed_to_a_limit() -> None:
    script = "rm -rf /"
    for _ in range(MAX_DEPTH):
        script = f"bash -c {_quote(script)}"
    assert "rm" in programs(analyse_script(script))
    deeper = analyse_script(f"bash -c {_quote(script)}")
    assert "rm" not in programs(deeper) and "nested shells" in deeper.opaque[0].why


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def test_argument_vectors_are_judged_as_argv() -> None:
    analysis = analyse_argv(["bash", "-lc", "echo hi; rm -rf /"])
    assert programs(analysis) == ["bash", "echo", "rm"]
    (single,) = analyse_argv(["echo", "a; rm -rf /"]).commands  # no shell: one argument
    assert single.words == ("a; rm -rf /",)
    assert analyse_argv([]).opaque
