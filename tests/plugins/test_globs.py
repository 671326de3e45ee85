"""Globs compiled once match as `fnmatchcase` matches each glob."""

from __future__ import annotations

from fnmatch import fnmatchcase

from hypothesis import given
from hypothesis import strategies as st

from interlock.plugins._globs import Globs

names = st.text(alphabet="ab.-*?[]!/", max_size=6)


@given(st.lists(names, max_size=5), names)
def test_globs_match_as_fnmatchcase_does(globs: list[str], name: str) -> None:
    assert Globs(globs).match(name) == any(fnmatchcase(name, glob) for glob in globs)


def test_plain_names_and_wildcards() -> None:
    globs = Globs(["rm", "mkfs.*", "todo?", "[!-]x"])
    assert globs.match("rm") and globs.match("mkfs.ext4") and globs.match("todo1")
    assert globs.match("ax") and not globs.match("-x")
    assert not globs.match("rmdir") and not globs.match("RM")
    assert not Globs([]).match("")
