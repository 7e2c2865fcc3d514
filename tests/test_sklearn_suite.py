"""scikit-learn's own MLP test suite, run against backprop.

At test time, ``sklearn/neural_network/tests/test_mlp.py`` is copied from the installed
scikit-learn into a temporary directory, its import of the estimators is swapped for
``from backprop import MLPClassifier, MLPRegressor``, a conftest gives it the fixture
scikit-learn's own conftest provides (``global_random_seed``), and pytest runs it in a
subprocess (so that neither this project's pytest configuration nor its imports leak in).
Every test must pass, except those listed in ``EXPECTED_FAILURES`` with the reason.
"""

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

SWAP_FROM = "from sklearn.neural_network import MLPClassifier, MLPRegressor"
SWAP_TO = "from backprop import MLPClassifier, MLPRegressor"

#: test id -> why it cannot pass. scikit-learn's private internals that the suite reads and
#: that backprop mirrors (``_loss_grad_lbfgs`` for test_gradient, ``_optimizer.learning_rate``
#: for test_learning_rate_warmstart and test_adaptive_learning_rate) pass, so today it is empty.
EXPECTED_FAILURES: dict[str, str] = {}

CONFTEST = '''
import os

import pytest


@pytest.fixture
def global_random_seed():
    """scikit-learn's conftest gives 42 unless SKLEARN_TESTS_GLOBAL_RANDOM_SEED names one."""
    value = os.environ.get("SKLEARN_TESTS_GLOBAL_RANDOM_SEED", "42")
    return int(value) if value.isdigit() else 42
'''


def swapped_suite(directory: Path) -> Path:
    """Write the swapped copy of scikit-learn's test_mlp.py (and a conftest) into directory."""
    sklearn = pytest.importorskip("sklearn")
    source = Path(sklearn.__file__).parent / "neural_network" / "tests" / "test_mlp.py"
    if not source.exists():
        pytest.skip(f"this scikit-learn install ships no tests ({source} is missing)")
    text = source.read_text()
    assert text.count(SWAP_FROM) == 1, f"{source} no longer imports the estimators as expected"
    (directory / "test_mlp.py").write_text(text.replace(SWAP_FROM, SWAP_TO))
    (directory / "conftest.py").write_text(CONFTEST)
    (directory / "pytest.ini").write_text("[pytest]\n")  # this directory is the rootdir
    return directory / "test_mlp.py"


def outcomes(report: Path) -> dict[str, str]:
    """test id -> "passed" / "failed" / "error" / "skipped" from a JUnit XML report."""
    result = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        kinds = {child.tag for child in case}
        state = next((k for k in ("failure", "error", "skipped") if k in kinds), "passed")
        result[case.get("name")] = {"failure": "failed"}.get(state, state)
    return result


@pytest.mark.slow
def test_sklearn_mlp_suite_passes_against_backprop(tmp_path):
    suite = swapped_suite(tmp_path)
    report = tmp_path / "report.xml"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider",
         f"--junitxml={report}", "--rootdir", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert report.exists(), f"pytest did not run:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    seen = outcomes(report)
    assert len(seen) > 50, f"only {len(seen)} tests were collected:\n{run.stdout[-3000:]}"
    assert not [t for t, s in seen.items() if s == "error"], run.stdout[-5000:]
    failed = {t for t, s in seen.items() if s == "failed"}
    unexpected = sorted(failed - set(EXPECTED_FAILURES))
    assert not unexpected, f"failed: {unexpected}\n{run.stdout[-5000:]}"
    now_passing = sorted(set(EXPECTED_FAILURES) - failed)
    assert not now_passing, f"now passing, remove from EXPECTED_FAILURES: {now_passing}"
    assert "test_sparse_matrices[csr_matrix]" in seen and "test_fit" in seen
