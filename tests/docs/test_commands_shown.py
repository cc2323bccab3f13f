"""Every ``courier`` command line shown in a code block of the README or docs/
is one that ``courier`` accepts: it is parsed by the real argument parser
(nothing is run), with the placeholders replaced by sample values."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from component.main import parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# the line starts with the command (after a `$ ` prompt, a path or `ExecStart=`)
COMMAND = re.compile(r"^\s*(?:\$ )?(?:ExecStart=)?(?:[\w./-]*/)?courier (?=[a-z])")
# What the docs write for a value the reader fills in.
SAMPLES = {
    "PORT": "15269",
    "P": "9477",
    "PASSWORD": "pw",
    "S": "secret",
    "ID": "4f1c",
    "TEXT": "Hello",
    "SECONDS": "30",
}


def shown_commands() -> list[tuple[str, int, str]]:
    """(file, line, command) for each ``courier …`` line of a fenced or indented code block."""
    found = []
    for doc in DOCS:
        fenced = False
        lines = doc.read_text().splitlines()
        for number, line in enumerate(lines, 1):
            if line.startswith("```"):
                fenced = not fenced
                continue
            if not (fenced or line.startswith("    ")):
                continue
            match = COMMAND.search(line)
            if not match or line.lstrip().startswith("#"):
                continue
            text = "courier " + line[match.end() :]
            follow = number
            while text.rstrip().endswith("\\") and follow < len(lines):
                text = text.rstrip()[:-1] + " " + lines[follow].strip()
                follow += 1
            found.append((doc.relative_to(ROOT).as_posix(), number, text))
    return found


def argv_of(command: str) -> list[str]:
    words = shlex.split(command, comments=True)
    words = [w for w in (word.strip("[]") for word in words) if w and w not in {"…", "..."}]
    cut = next((i for i, w in enumerate(words) if w in {">", "|", "&&"}), len(words))
    return [SAMPLES.get(word, word) for word in words[1:cut]]


def test_the_docs_show_commands() -> None:
    # The README shows at least up, run, adduser, status, prosody-config, config-doc and client.
    shown = {argv_of(command)[0] for _doc, _line, command in shown_commands()}
    assert {"up", "run", "adduser", "status", "prosody-config", "config-doc", "client"} <= shown


@pytest.mark.parametrize(("doc", "line", "command"), shown_commands())
def test_a_command_shown_in_the_docs_parses(doc: str, line: int, command: str) -> None:
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            parser().parse_args(argv_of(command))
    except SystemExit as exc:
        pytest.fail(f"{doc}:{line}: `{command}` is refused by courier: {errors.getvalue().strip() or exc}")
