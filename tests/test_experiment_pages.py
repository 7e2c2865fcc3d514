"""The experiment pages say what their results files say.

Every number in a table of ``docs/experiments/NAME.md`` (and of its generated ``summary.md``)
must equal, at the precision shown, a number in ``docs/experiments/NAME/results.json``, the file
the run that made the page wrote, or in another JSON file the page's runs wrote beside it (the
convolution page's ``runs.json`` holds the ``backprop train`` runs it quotes). Re-running an experiment without updating its page, or editing
a page by hand, fails here. Each generated summary also names the commit, NumPy/BLAS and machine.
"""

import json
import math
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "experiments"
PAGES = sorted(p.stem for p in DOCS.glob("*.md"))
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w.])")


def leaves(obj):
    """Every number in a JSON tree."""
    if isinstance(obj, dict):
        for v in obj.values():
            yield from leaves(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from leaves(v)
    elif isinstance(obj, bool) or obj is None:
        return
    elif isinstance(obj, int | float):
        yield float(obj)


def shown_as(value: float, text: str) -> bool:
    """Does ``value``, rounded as ``text`` is written, read ``text``?"""
    x = float(text)
    if not math.isfinite(value):
        return False
    if "e" in text.lower():
        mantissa = text.lower().split("e")[0]
        decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
        return f"{value:.{decimals}e}" == f"{x:.{decimals}e}"
    decimals = len(text.split(".")[1]) if "." in text else 0
    if decimals == 0 and "." not in text:
        return round(value) == x or round(value, 0) == x
    return round(value, decimals) == round(x, decimals) or f"{value:.{decimals}f}" == text.lstrip(
        "+"
    )


def table_numbers(path: Path) -> list[tuple[int, str]]:
    """(line, number as written) for every number in the page's table rows. A table whose
    first row follows a ``<!-- numbers: SOURCE -->`` line holds numbers from elsewhere (a
    benchmark's output, say) and is left out."""
    out = []
    lines = path.read_text().splitlines()
    elsewhere = False
    for i, line in enumerate(lines, 1):
        if line.startswith("|") and (i == 1 or not lines[i - 2].startswith("|")):
            elsewhere = i > 1 and lines[i - 2].startswith("<!-- numbers:")
        if elsewhere and line.startswith("|"):
            continue
        if line.startswith("|") and not set(line) <= set("|- :"):
            cells = line.strip("|").split("|")
            for cell in cells:
                cell = cell.strip()
                if NUMBER.fullmatch(cell):  # a cell that is one number, not a label like "L1 1e-3"
                    out.append((i, cell))
    return out


def mismatches(page: Path, results: Path | list[Path]) -> list[str]:
    """``line: number`` for every table number of ``page`` that no field of ``results`` (one
    JSON file or several) reads."""
    files = results if isinstance(results, list) else [results]
    values = [v for f in files for v in leaves(json.loads(f.read_text()))]
    return [
        f"{page.name}:{line}: {text}"
        for line, text in table_numbers(page)
        if not any(shown_as(v, text) for v in values)
    ]


@pytest.mark.parametrize("name", PAGES)
def test_page_numbers_equal_the_results_file(name):
    results = DOCS / name / "results.json"
    assert results.is_file(), f"{name}: no results.json"
    files = sorted((DOCS / name).glob("*.json"))
    bad = mismatches(DOCS / f"{name}.md", files) + mismatches(DOCS / name / "summary.md", files)
    assert not bad, f"numbers in no JSON file of {name}/:\n" + "\n".join(bad)


def test_a_stale_page_is_caught(tmp_path):
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"runs": {"ReLU": {"test_accuracy": 0.9466666, "epochs": 40}}}))
    page = tmp_path / "page.md"
    page.write_text(
        "| network | epochs | accuracy |\n| --- | --- | --- |\n| ReLU + He | 40 | 0.9644 |\n"
    )
    assert mismatches(page, results) == ["page.md:3: 0.9644"]
    page.write_text(
        "| network | epochs | accuracy |\n| --- | --- | --- |\n| ReLU + He | 40 | 0.9467 |\n"
    )
    assert mismatches(page, results) == []


def test_fast_summaries_say_they_cannot_rank(tmp_path):
    import sys

    sys.path.insert(0, str(ROOT))
    from scripts.experiments._common import write_summary

    write_summary(tmp_path, "T", "body", {"fast": True})
    assert "**Fast form**" in (tmp_path / "summary.md").read_text()
    env = json.loads((tmp_path / "results.json").read_text())["environment"]
    assert set(env) == {"commit", "numpy", "blas", "machine"} and env["numpy"]
    write_summary(tmp_path, "T", "body", {"fast": False})
    assert "Fast form" not in (tmp_path / "summary.md").read_text()


def test_a_table_marked_as_from_elsewhere_is_left_out(tmp_path):
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"acc": 0.5}))
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- numbers: benchmarks/cnn.py -->\n| batch | s |\n| --- | --- |\n| 64 | 316.12 |\n\n"
        "| run | acc |\n| --- | --- |\n| a | 0.7 |\n"
    )
    assert mismatches(page, results) == ["page.md:8: 0.7"]


def test_the_optimizers_page_ranks_its_lowest_losses_as_its_results_do():
    # The prose once called the lr-0.5 sweep run "the best run of the whole page": L-BFGS ends
    # with a lower training loss, and the constant-rate schedule run a hair lower too.
    page = (DOCS / "optimizers.md").read_text()
    results = json.loads((DOCS / "optimizers" / "results.json").read_text())
    losses = {
        f"{part}/{name}": run["final_train_loss"]
        for part in ("optimizers", "lr_sweep", "schedules")
        for name, run in results[part].items()
    }
    lowest = min(losses, key=losses.get)
    assert lowest == "optimizers/L-BFGS (full batch)"
    first_order = sorted((v, k) for k, v in losses.items() if k != lowest)[:2]
    assert {k for _, k in first_order} == {"lr_sweep/0.5", "schedules/Constant"}
    assert "best run of the whole page" not in page
    assert f"only L-BFGS ends lower, {losses[lowest]:.4f}" in page
    assert f"0.5 ({losses['lr_sweep/0.5']:.4f}, level with the constant-rate" in page


def test_the_convolution_page_describes_the_model_its_gradient_check_ran():
    # The page once said its AvgPool2D(2) pooled "an odd map": the model feeds it 4x2, which
    # tiles exactly (and the script's docstring listed a Flatten the model does not have).
    import sys

    sys.path.insert(0, str(ROOT))
    from scripts.experiments.convolution import gradient_model

    model = gradient_model()
    page = (DOCS / "convolution.md").read_text()
    described = page.split("## check_gradients", 1)[1].split("```", 1)[0]
    described = " ".join(described.split())
    for layer in model.layers:
        if "Pool2D" in type(layer).__name__ and "Global" not in type(layer).__name__:
            h, w = layer.in_shape[:2]
            assert f"{type(layer).__name__} {layer.pool_size[0]}" in described
            assert f"on the {h}x{w} map" in described, type(layer).__name__
    assert "odd map" not in described


def test_the_convolution_page_states_its_parameter_budgets_as_measured():
    # "the same number of parameters to within 0.2%": the first pair, 4780 and 4793, differ
    # by 0.27%.
    page = (DOCS / "convolution.md").read_text()
    rows = json.loads((DOCS / "convolution" / "results.json").read_text())["comparison"]
    pairs = zip(rows[::2], rows[1::2], strict=True)
    worst = max(abs(b["parameters"] - a["parameters"]) / a["parameters"] for a, b in pairs)
    claim = re.search(r"same number of parameters to within ([\d.]+)%", " ".join(page.split()))
    assert claim, "the page no longer states how close the budgets are"
    assert 100 * worst <= float(claim.group(1)) < 100 * worst + 0.1
