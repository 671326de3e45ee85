"""How to install an optional extra, worded once for every error and hint that names one.

interlock is not on a package index yet: it is installed from its checkout, with `-e`.
"""

from __future__ import annotations


def install_command(extra: str) -> str:
    """The command that installs interlock with `extra`:
    `pip install -e '<interlock checkout>[<extra>]'`."""
    return f"pip install -e '<interlock checkout>[{extra}]'"


def missing_extra(what: str, needs: str, extra: str) -> ImportError:
    """The error raised when an optional dependency is not installed:
    `<what> needs <needs>: pip install -e '<interlock checkout>[<extra>]'`."""
    return ImportError(f"{what} needs {needs}: {install_command(extra)}")
