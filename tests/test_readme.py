"""README.md's code blocks run as written, and its links point at files that exist.

Every fenced block is executed: ```python blocks in a fresh namespace, ```bash blocks line
by line with the installed ``hybridhh`` (the ``make ...`` set-up lines are skipped: they
install the environment these tests run in). Each block runs in its own empty working
directory, so the relative paths of the README (``out/...``) are created there.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
HYBRIDHH = Path(sys.executable).with_name("hybridhh")
FENCE = re.compile(r"^```(\w*)[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def blocks() -> list[tuple[str, str]]:
    """``(language, code)`` of every fenced block of README.md, in order."""
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(README.read_text("utf-8"))]


def _ids() -> list:
    counts: dict = {}
    out = []
    for lang, code in blocks():
        if lang not in ("python", "bash"):
            continue
        counts[lang] = counts.get(lang, 0) + 1
        out.append(pytest.param(lang, code, id=f"{lang}-{counts[lang]}"))
    return out


def commands(code: str) -> list[list[str]]:
    """The ``hybridhh`` command lines of a bash block (set-up ``make`` lines left out).

    Raises AssertionError for any other command: the README's bash blocks hold only
    commands a user runs as written.
    """
    out = []
    for line in code.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if not words or words[0] == "make":
            continue
        assert words[0] == "hybridhh", f"README bash line is not a hybridhh command: {line!r}"
        out.append([str(HYBRIDHH), *words[1:]])
    return out


def test_readme_is_short_and_has_both_quick_starts():
    text = README.read_text("utf-8")
    assert len(text.splitlines()) <= 150
    langs = [lang for lang, _ in blocks()]
    assert "python" in langs and langs.count("bash") >= 2
    assert {"make demo", "make test"} <= set(re.findall(r"^make \w+", text, re.MULTILINE))


def test_readme_links_exist():
    text = README.read_text("utf-8")
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert links
    missing = [p for p in links if "://" not in p and not (ROOT / p).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_bash_lines_are_hybridhh_commands():
    for lang, code in blocks():
        if lang == "bash":
            commands(code)  # raises for anything else


@pytest.mark.parametrize("lang,code", _ids())
def test_readme_block_runs(lang, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    if lang == "python":
        exec(compile(code, f"{README}:python", "exec"), {"__name__": "__readme__"})
        return
    for cmd in commands(code):
        proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True,
                              timeout=600, env={**os.environ, "MPLBACKEND": "Agg"})
        assert proc.returncode == 0, (
            f"`{shlex.join(['hybridhh', *cmd[1:]])}` exited {proc.returncode}:\n"
            f"{proc.stderr[-3000:]}")
