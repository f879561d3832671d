"""The commands README.md and docs/*.md tell a user to type, and a shell that runs them as written.

Every fenced block must name its language. ``bash``/``sh``/``shell`` blocks hold commands (backslash
continuations joined, ``#`` comments dropped), ``console`` blocks the lines after ``$ ``, and a ``python``
block is one command (the whole snippet). Other languages (``text``, ``json``, ``yaml``) are not commands.
A command's key is its text with runs of whitespace collapsed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.processes import REPO_ROOT, ManagedProcess

SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
OTHER_LANGUAGES = {"text", "json", "yaml", "python"}
FENCE = re.compile(r"^```(?P<lang>[^\n`]*)\n(?P<body>.*?)^```\s*$", re.MULTILINE | re.DOTALL)
OPTIONAL = re.compile(r"\[(--[^\[\]]*)\]")  # `[--json]`, `[--runtime auto|tensorrt]`; not `'[[0.1]]'`


def doc_files() -> list[Path]:
    return [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


@dataclass(frozen=True)
class Fence:
    path: Path
    line: int
    language: str
    body: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO_ROOT)}:{self.line}"


def fences(path: Path) -> list[Fence]:
    text = path.read_text(encoding="utf-8")
    return [Fence(path, text.count("\n", 0, match.start()) + 1, match["lang"].strip(), match["body"])
            for match in FENCE.finditer(text)]


def normalize(command: str) -> str:
    return " ".join(command.split())


def _strip_comment(line: str) -> str:
    """Drop a trailing `# comment` (outside quotes) and a comment-only line."""
    quote: str | None = None
    for index, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip()
    return line.rstrip()


def commands_in(fence: Fence) -> list[str]:
    if fence.language == "python":
        return [fence.body.strip()]
    lines = fence.body.splitlines()
    if fence.language == "console":
        lines = [line[2:] for line in lines if line.startswith("$ ")]
    commands: list[str] = []
    pending = ""
    for raw in lines:
        line = _strip_comment(raw)
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        command = normalize(pending + line)
        pending = ""
        if command:
            commands.append(command)
    return commands


def documented() -> dict[str, list[str]]:
    """command key -> where it is documented (file:line of its block)."""
    found: dict[str, list[str]] = {}
    for path in doc_files():
        for fence in fences(path):
            if fence.language in SHELL_LANGUAGES or fence.language == "python":
                for command in commands_in(fence):
                    found.setdefault(normalize(command), []).append(fence.where)
    return found


def python_source(key: str) -> str | None:
    """The documented snippet whose key this is, as written (indentation matters)."""
    for path in doc_files():
        for fence in fences(path):
            if fence.language == "python" and normalize(fence.body) == key:
                return fence.body
    return None


def expand(command: str, optional: str) -> str:
    """``optional='drop'`` leaves out every `[--...]` group; ``'keep'`` keeps each with its first alternative."""
    if optional == "drop":
        return normalize(OPTIONAL.sub("", command))
    return normalize(OPTIONAL.sub(lambda match: match[1].split("|")[0], command))


@dataclass
class DocShell:
    """Runs documented commands (looked up by their exact documented text) with bash, in ``cwd``."""

    cwd: Path
    env: dict[str, str]
    ran: set[str] = field(default_factory=set)

    def _prepare(self, command: str, subs: Mapping[str, str], optional: str) -> str:
        key = normalize(command)
        assert key in documented(), f"not a documented command (any more?): {key}"
        self.ran.add(key)
        text = expand(key, optional)
        for old, new in subs.items():
            assert old in text, f"{old!r} is not in {text!r}"
            text = text.replace(old, new)
        return text

    def run(self, command: str, subs: Mapping[str, str] | None = None, *, optional: str = "drop",
            timeout: float = 180, stdin: str | None = None) -> str:
        """Run to completion; the documented command must succeed. Returns its stdout."""
        text = self._prepare(command, subs or {}, optional)
        source = python_source(normalize(command))
        if source is not None:
            for old, new in (subs or {}).items():
                source = source.replace(old, new)
        argv = [sys.executable, "-c", source] if source is not None else ["bash", "-o", "pipefail", "-c", text]
        done = subprocess.run(argv, cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=timeout,
                              input=stdin, check=False)
        assert done.returncode == 0, f"`{text}` exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    def start(self, command: str, log: Path, subs: Mapping[str, str] | None = None, *,
              optional: str = "drop") -> ManagedProcess:
        """Start a long-running command (a trailing `&` is the user's backgrounding): stop it by PID."""
        text = self._prepare(command, subs or {}, optional).removesuffix("&").rstrip()
        return ManagedProcess(["bash", "-c", f"exec {text}"], log, env=self.env, cwd=self.cwd)
