"""The README is the first visit's page: short, true to its sources, and pointing at the site.

Its results and performance tables quote numbers measured elsewhere; every number in such a row
(beyond the first column, which names the workload) must appear in the page the row links to, so
a re-measured page with a stale README fails here. The feature table must name real public names,
the two commands must be Makefile targets, every linked page must exist, and every user-guide page
must be in the user guide's toctree (Sphinx would otherwise stop `make docs` with a warning).
The benchmarks page's table, which the README's performance rows quote, must be the one in
``benchmarks/latest.txt``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import backprop as bp

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
LINK = re.compile(r"\]\(([^)#]+)(?:#[^)]*)?\)")
NUMBER = re.compile(r"\d+(?:\.\d+)?(?:e[-+]?\d+)?%?")


def section(text: str, title: str) -> str:
    """The body of ``## title`` up to the next ``## ``."""
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def table_rows(text: str) -> list[list[str]]:
    """The cells of every body row of the markdown tables in ``text`` (each table's header row
    and separator left out)."""
    rows, previous = [], ""
    for line in text.splitlines():
        if line.startswith("|") and previous.startswith("|"):
            cells = line.strip().strip("|").split("|")
            if not set("".join(cells)) <= set("- :"):  # not the separator
                rows.append([c.strip() for c in cells])
        previous = line
    return rows


def unquoted_numbers(row: list[str], base: Path) -> list[str]:
    """The numbers of ``row`` (first column left out) that the page it links to does not hold."""
    links = [m.group(1) for m in LINK.finditer(row[-1])]
    assert links, f"a row without a link to its source: {row}"
    source = "".join((base / link).read_text() for link in links)
    found = set(NUMBER.findall(source))
    cells = " ".join(LINK.sub("", c) for c in row[1:-1])
    return [n for n in NUMBER.findall(cells) if n not in found]


@pytest.mark.parametrize("title", ["Results", "Performance"])
def test_readme_tables_quote_the_pages_they_link_to(title):
    rows = table_rows(section(README.read_text(), title))
    assert len(rows) >= 5
    stale = {row[0]: unquoted_numbers(row, ROOT) for row in rows}
    assert {k: v for k, v in stale.items() if v} == {}


def test_a_stale_quote_is_caught(tmp_path):
    (tmp_path / "page.md").write_text("| LeNet-5 | 0.9887 | 9 (6) |\n")
    row = ["LeNet-5, 10,000 rows", "test accuracy 0.9887 after 9 epochs", "[page](page.md)"]
    assert unquoted_numbers(row, tmp_path) == []
    row[1] = "test accuracy 0.9901 after 9 epochs"
    assert unquoted_numbers(row, tmp_path) == ["0.9901"]


def resolve(name: str):
    """``bp.NAME`` (dotted names walk attributes), else ``bp.pruning.NAME``, else None."""
    for root in (bp, bp.pruning):
        obj = root
        for part in name.split("."):
            obj = getattr(obj, part, None)
        if obj is not None:
            return obj
    return None


def test_the_feature_table_names_the_layer_families_and_real_public_names():
    table = section(README.read_text(), "What is in the box")
    names = set(re.findall(r"`(?:bp\.)?([A-Za-z_][\w.]*)`", table))
    required = {"Conv1D", "Conv2D", "MaxPool2D", "AvgPool2D", "Flatten", "Reshape", "Residual"}
    required |= {"RNN", "LSTM", "GRU", "Embedding", "MultiHeadSelfAttention"}
    required |= {"SinusoidalPositionalEncoding", "LearnedPositionalEncoding"}
    required |= {"pruning.prune", "GradualPruning", "structured.prune_units"}
    assert required - names == set()
    # every class name and dotted name is public, at the top level or in bp.pruning
    checked = [n for n in names if n[0].isupper() or "." in n]
    assert len(checked) >= 40
    missing = [n for n in checked if resolve(n) is None]
    assert missing == []


def test_the_two_commands_are_make_targets_and_the_docs_path_is_what_make_docs_writes():
    text = README.read_text()
    makefile = (ROOT / "Makefile").read_text()
    for target in ("run", "test", "test-fast", "docs"):
        assert f"make {target}" in text
        assert re.search(rf"^{re.escape(target)}:", makefile, re.M), target
    out = re.search(r"sphinx .* docs (\S+)$", makefile, re.M).group(1)
    assert f"`{out}/index.html`" in text


def test_every_page_the_readme_links_to_exists():
    links = {m.group(1) for m in LINK.finditer(README.read_text()) if "://" not in m.group(1)}
    assert len(links) >= 10
    assert sorted(link for link in links if not (ROOT / link).is_file()) == []


def test_every_user_guide_page_is_in_the_user_guide_toctree():
    toctree = (ROOT / "docs" / "user_guide.md").read_text().split("```{toctree}", 1)[1]
    listed = set(toctree.split("```", 1)[0].split())
    pages = {f"user_guide/{p.stem}" for p in (ROOT / "docs" / "user_guide").glob("*.md")}
    assert pages - listed == set()


def test_the_readme_stays_a_first_visit():
    assert len(README.read_text().splitlines()) < 200


def table_block(page: str) -> list[str]:
    """The first indented block of ``page`` that starts with a ``workload`` header row."""
    lines = page.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("    workload "))
    block = []
    for line in lines[start:]:
        if not line.startswith("    "):
            break
        block.append(line[4:].rstrip())
    return block


def test_the_benchmarks_page_quotes_benchmarks_latest_txt_verbatim():
    page = (ROOT / "docs" / "benchmarks.md").read_text()
    latest = [
        line.rstrip() for line in (ROOT / "benchmarks" / "latest.txt").read_text().split("\n")
    ]
    block = table_block(page)
    assert len(block) >= 10
    start = latest.index(block[0])
    assert latest[start : start + len(block)] == block
