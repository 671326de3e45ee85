"""The shell analysis behind tool-guard: every simple command, what cannot be judged."""

from __future__ import annotations

import pytest

from interlock.plugins._shell import (
    MAX_BRACE_WORDS,
    MAX_CHARS,
    MAX_COMMANDS,
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
        ("export A=$(declared)", ["export", "declared"]),  # declarations are commands
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


@pytest.mark.parametrize(
    ("script", "words"),
    [
        ("rm {-r,-f} x", ("-r", "-f", "x")),
        ("rm {-rf,} x", ("-rf", "x")),
        ("rm -{r,f} x", ("-r", "-f", "x")),
        ("echo a{1..3}", ("a1", "a2", "a3")),
        ("echo {a..c}", ("a", "b", "c")),
        ("echo '{a,b}' \\{a,b}", ("{a,b}", "{a,b}")),  # quoted or escaped: no expansion
        ("find . -exec x {} +", (".", "-exec", "x", "{}", "+")),
    ],
)  # fmt: skip
def test_brace_expansion_happens_before_judging(script: str, words: tuple[str, ...]) -> None:
    assert analyse_script(script).commands[0].words == words


def test_a_brace_expansion_too_large_to_judge_is_opaque() -> None:
    analysis = analyse_script(f"rm {{1..{MAX_BRACE_WORDS * 2}}}")
    assert "brace expansion" in analysis.opaque[0].why


@pytest.mark.parametrize(
    ("program", "words", "flags"),
    [
        ("rm", ["--rec", "--f"], {"-r", "-f"}),
        ("rm", ["--r"], {"-r"}),
        ("chmod", ["--recur"], {"-R"}),
        ("chmod", ["--re"], {"--reference", "-R"}),  # ambiguous: every candidate counts
        ("git", ["--har"], {"--hard"}),
        ("git", ["--forc"], {"-f", "--force-with-lease", "--force-if-includes"}),
        ("ls", ["--rec"], {"--rec"}),  # programs outside the table keep what is written
    ],
)  # fmt: skip
def test_long_option_abbreviations_count_as_the_options(
    program: str, words: list[str], flags: set[str]
) -> None:
    assert normalise_flags(program, words) == flags


def test_line_continuations_are_removed_as_bash_removes_them() -> None:
    assert "rm" in programs(analyse_script("r\\\nm -rf x"))
    assert analyse_script("rm -r\\\nf x").commands[0].flags >= {"-r", "-f"}


def test_written_paths_are_normalised_and_found_in_arguments() -> None:
    def writes(script: str) -> set[str | None]:
        return {w for c in analyse_script(script).commands for w in c.writes}

    assert writes("dd if=/dev/zero of=//dev/./sda") == {"/dev/sda"}
    assert writes("echo x > /dev/../dev//sda") == {"/dev/sda"}
    assert writes("ls | tee -a a.log /dev/sdb") == {"a.log", "/dev/sdb"}
    assert writes("cp /dev/zero /dev/sda") == {"/dev/sda"}
    assert writes("cp -t /backup a b") == {"/backup"}
    assert writes("find / -fls /dev/sdc") == {"/dev/sdc"}


@pytest.mark.parametrize(
    ("script", "why"),
    [
        ("cat <<EOF\n`id`\nEOF\n", "substitution the analysis did not read"),
        ("echo ${x:-`id`}", "substitution the analysis did not read"),
        ("echo $((x))", "arithmetic reads `x`"),
        ("x=$(date); echo $((x))", "arithmetic reads `x`"),
        ("echo $(( $(date +%s) ))", "output of a substitution"),
        ("echo $(($1 + 1))", "parameter whose value is not known"),
        ("x='a[$(id)]'", "array element with a substitution"),
        ("unset 'a[$(id)]'", "substitution in its subscript"),
        ("declare -n r=$y", "name reference"),
        ("echo ${x@P}", "as a prompt"),
        ("echo ${!x}", "${!name}"),
        ("alias ll='ls -l'", "alias"),
        ("bind -x '\"\\C-t\": id'", "command run later"),
        ("bash /dev/stdin", "reads commands from its input"),
        ("python3 /proc/self/fd/0", "reads code from its input"),
        ("sed '1e id' f", "sed script"),
        ("awk 'BEGIN { system(\"id\") }'", "awk program"),
        ("parallel echo ::: a", "through a shell"),
        ("git -c alias.x='!id' x", "may run code"),
        ("LD_PRELOAD=/tmp/x.so ls", "LD_PRELOAD"),
        ("PS1='$(id)'", "PS1"),
        ("env -S \"$X\"", "env runs text that is not known"),
    ],
)  # fmt: skip
def test_hidden_code_is_opaque(script: str, why: str) -> None:
    opaque = analyse_script(script).opaque
    assert any(why in part.why for part in opaque), opaque


@pytest.mark.parametrize(
    "script",
    [
        "x=1; echo $((x + 1))", "for ((i = 0; i < 3; i++)); do echo $i; done",
        "for i in 1 2; do echo $((i * 2)); done", "let n=2; echo $((n))", "echo $((RANDOM % 6))",
        "declare -A m; m[key]=1; echo ${m[key]}", "echo ${!arr[@]} ${#x} ${x:-y}",
        "cat <<'EOF'\n$(literal) `literal`\nEOF\n", 'echo "\\`x"', "sed -e 's/a/b/g' f",
        "awk '$1 > 2 || $2 < 1 {print $1}' f", "trap - EXIT", "trap -p",
    ],
)  # fmt: skip
def test_look_alikes_of_hidden_code_are_not_opaque(script: str) -> None:
    assert analyse_script(script).opaque == (), script


def test_long_text_and_many_commands_are_opaque_not_slow() -> None:
    long = analyse_script("echo " + "a" * MAX_CHARS)
    assert not long.commands and f"longer than {MAX_CHARS}" in long.opaque[0].why
    many = analyse_script("ls; " * (MAX_COMMANDS + 5))
    assert f"more than {MAX_COMMANDS} commands" in many.opaque[-1].why
    assert analyse_argv(["echo", "a" * MAX_CHARS]).opaque
