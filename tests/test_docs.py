"""Every Python block in README.md and docs/**/*.md runs here, so a stale example fails CI.

Collection is automatic: each ```python fenced block becomes one test, named by file and line.
The blocks of one file run in order in one shared namespace (as a reader would paste them into one
session), with the working directory set to a fresh temporary folder.

A block that cannot run in CI says so on the line just above its fence, with a reason:

    <!-- docs-test: skip needs data/mnist.npz (python scripts/fetch_data.py mnist) -->

Such blocks are reported as skipped, with the reason, in pytest's summary (``-rs``); a marker
without a reason, or any other ``docs-test:`` word, is an error. A block that needs a data file
the suite may not have names it instead, and runs when it is there (skipped, with the path as the
reason, when it is not); ``data/`` is then visible from the block's working directory:

    <!-- docs-test: needs data/fortunes --> ``<!-- docs-test: script -->``
runs the block as its own ``python`` script in a subprocess instead (for blocks that start worker
processes and must carry their own ``if __name__ == "__main__":`` guard).

Excerpts of library code shown next to a formula are ```py blocks (not run) that name their
source on the line above, ``<!-- excerpt: backprop/layers/dense.py -->``; each excerpt's lines
must appear in that file, in order, so an excerpt cannot drift from the code it quotes. A ```py
block without that marker is an error (a runnable example must be ```python).
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```python\s*$")
EXCERPT_FENCE = re.compile(r"^```py\s*$")
EXCERPT = re.compile(r"^<!--\s*excerpt:\s*(\S+)\s*-->\s*$")
MARKER = re.compile(r"^<!--\s*docs-test:\s*(\S+)\s*(.*?)\s*-->\s*$")


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    code: str
    mode: str  # "run", "skip" or "script"
    reason: str = ""

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def parse_blocks(path: Path) -> list[Block]:
    """The python blocks of one markdown file, with their markers (errors for bad markers)."""
    lines = path.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if FENCE.match(lines[i]):
            start = i
            j = i + 1
            while j < len(lines) and lines[j].rstrip() != "```":
                j += 1
            if j == len(lines):
                raise ValueError(f"{path}:{start + 1}: unclosed ```python block")
            mode, reason = "run", ""
            prev = lines[start - 1] if start else ""
            m = MARKER.match(prev)
            if m:
                mode, reason = m.group(1), m.group(2)
                if mode not in ("skip", "script", "needs"):
                    raise ValueError(f"{path}:{start}: unknown docs-test marker {mode!r}")
                if mode in ("skip", "needs") and not reason:
                    raise ValueError(f"{path}:{start}: a docs-test {mode} needs a reason")
            blocks.append(
                Block(path, start + 1, "\n".join(lines[start + 1 : j]) + "\n", mode, reason)
            )
            i = j
        i += 1
    return blocks


def parse_excerpts(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, source file, code lines) of every ```py excerpt of one markdown file."""
    lines = path.read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        if not EXCERPT_FENCE.match(line):
            continue
        m = EXCERPT.match(lines[i - 1]) if i else None
        if not m:
            raise ValueError(f"{path}:{i + 1}: a ```py block needs <!-- excerpt: FILE --> above")
        j = i + 1
        while j < len(lines) and lines[j].rstrip() != "```":
            j += 1
        out.append((i + 1, m.group(1), lines[i + 1 : j]))
    return out


def excerpt_problem(source: str, code: list[str]) -> str | None:
    """None when the excerpt's lines occur in ``source`` in order (exact lines), else why not."""
    path = ROOT / source
    if not path.is_file():
        return f"{source} does not exist"
    text = path.read_text().splitlines()
    pos = 0
    for line in code:
        try:
            pos = text.index(line, pos) + 1
        except ValueError:
            return f"line not found in {source} (in this order): {line!r}"
    return None


ALL_BLOCKS = [b for p in doc_files() for b in parse_blocks(p)]
ALL_EXCERPTS = [(p, *e) for p in doc_files() for e in parse_excerpts(p)]
_sessions: dict[Path, tuple[dict, list[int], Path]] = {}


def _run_in_session(block: Block, tmp_path_factory, monkeypatch) -> None:
    """Run every earlier runnable block of the file (once), then this one, in the file's own
    namespace and working directory."""
    if block.path not in _sessions:
        _sessions[block.path] = ({"__name__": "__main__"}, [], tmp_path_factory.mktemp("docs"))
    namespace, done, cwd = _sessions[block.path]
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    for earlier in ALL_BLOCKS:
        if earlier.path != block.path or earlier.line > block.line or earlier.line in done:
            continue
        if earlier.mode not in ("run", "needs") or (
            earlier.mode == "needs" and not (ROOT / earlier.reason).exists()
        ):
            continue
        done.append(earlier.line)
        if earlier.mode == "needs" and not (cwd / "data").exists():
            (cwd / "data").symlink_to(ROOT / "data", target_is_directory=True)
        code = compile(earlier.code, earlier.id, "exec")
        exec(code, namespace)  # noqa: S102 - the documentation's own examples


def test_markers_are_well_formed_and_blocks_exist():
    assert len(ALL_BLOCKS) >= 4  # README's blocks at least: the collector finds them
    bad = tmp = ROOT / "tests" / "_bad_marker.md"
    try:
        tmp.write_text("<!-- docs-test: skip -->\n```python\npass\n```\n")
        with pytest.raises(ValueError, match="needs a reason"):
            parse_blocks(bad)
        tmp.write_text("<!-- docs-test: needs -->\n```python\npass\n```\n")
        with pytest.raises(ValueError, match="needs a reason"):
            parse_blocks(bad)
        tmp.write_text("<!-- docs-test: needs data/x.npz -->\n```python\npass\n```\n")
        assert [(b.mode, b.reason) for b in parse_blocks(bad)] == [("needs", "data/x.npz")]
        tmp.write_text("<!-- docs-test: maybe x -->\n```python\npass\n```\n")
        with pytest.raises(ValueError, match="unknown docs-test marker"):
            parse_blocks(bad)
    finally:
        tmp.unlink(missing_ok=True)


@pytest.mark.parametrize(
    "path, line, source, code",
    ALL_EXCERPTS,
    ids=[f"{p.relative_to(ROOT)}:{line}" for p, line, _, _ in ALL_EXCERPTS],
)
def test_code_excerpt_matches_its_source(path, line, source, code):
    problem = excerpt_problem(source, code)
    assert problem is None, f"{path.relative_to(ROOT)}:{line}: {problem}"


def test_a_drifted_excerpt_is_caught():
    assert (
        excerpt_problem(
            "backprop/layers/dense.py", ['        return grad_out @ self.params["W"].T']
        )
        is None
    )
    assert "not found" in excerpt_problem(
        "backprop/layers/dense.py", ["        return grad_out @ W"]
    )
    assert "does not exist" in excerpt_problem("backprop/nothing.py", ["x"])


# Script blocks start processes (seconds each on a loaded machine): marked slow.
PARAMS = [
    pytest.param(b, id=b.id, marks=[pytest.mark.slow] if b.mode == "script" else [])
    for b in ALL_BLOCKS
]


@pytest.mark.parametrize("block", PARAMS)
def test_doc_block_runs(block: Block, tmp_path, tmp_path_factory, monkeypatch):
    if block.mode == "skip":
        pytest.skip(f"docs-test marker: {block.reason}")
    if block.mode == "needs":
        if not (ROOT / block.reason).exists():
            pytest.skip(f"docs-test marker: needs {block.reason}, which is not there")
    if block.mode == "script":
        script = tmp_path / "block.py"
        script.write_text(block.code)
        proc = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, f"{block.id} failed:\n{proc.stderr[-3000:]}"
        return
    _run_in_session(block, tmp_path_factory, monkeypatch)


PLANNING = re.compile(r"\bissues? \d+\b|\[MISSED\]|\bTODO\b", re.IGNORECASE)


@pytest.mark.parametrize(
    "path",
    [*doc_files(), ROOT / "benchmarks" / "latest.txt"],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_no_internal_planning_language_in_user_facing_text(path):
    hits = [
        f"{path.relative_to(ROOT)}:{i}: {line.strip()}"
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if PLANNING.search(line)
    ]
    assert not hits, "\n".join(hits)


def test_tutorial_notebook_runs(tmp_path, monkeypatch):
    # docs/tutorial.ipynb is executed only by the Sphinx build (myst-nb); its code cells run
    # here too, in order in one namespace, so a stale call fails CI like a stale doc block.
    import json

    notebook = json.loads((ROOT / "docs" / "tutorial.ipynb").read_text())
    cells = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert cells, "the tutorial has no code cells"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__tutorial__"}
    for i, cell in enumerate(cells):
        exec(
            compile("".join(cell["source"]), f"tutorial.ipynb code cell {i + 1}", "exec"), namespace
        )
    assert namespace["accuracy"] > 0.85  # the network trained by hand
    assert namespace["report"].passed  # its gradients against finite differences
