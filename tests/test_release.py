"""The release: a license, one version, a changelog, the example configs an installed ``backprop``
finds, and (slow) a wheel built with ``python -m build`` that trains after installation into a
fresh virtual environment outside the checkout."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

import backprop as bp
from backprop.app import cli
from backprop.app.shipped import example_path, examples_dir, list_examples

ROOT = Path(__file__).resolve().parents[1]


def test_license_is_bsd3_in_the_file_and_the_metadata():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License")
    assert "the backprop developers" in text
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "BSD-3-Clause"
    assert project["license-files"] == ["LICENSE"]


def test_one_version_everywhere():
    written = re.search(r'__version__ = "([^"]+)"', (ROOT / "backprop/_version.py").read_text())
    assert written is not None
    assert bp.__version__ == written.group(1)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert metadata.version("backprop") == bp.__version__  # the installed metadata agrees


def test_changelog_has_a_section_for_this_version_and_the_last():
    text = (ROOT / "CHANGELOG.md").read_text()
    release = re.match(r"\d+\.\d+\.\d+", bp.__version__).group(0)
    headings = re.findall(r"^## (\d+\.\d+\.\d+)", text, flags=re.M)
    assert headings[:2] == [release, "0.1.0"]


def test_every_config_of_the_checkout_is_a_shipped_example():
    assert examples_dir().resolve() == (ROOT / "configs").resolve()  # editable: the checkout
    assert list_examples() == sorted(p.stem for p in (ROOT / "configs").glob("*.toml"))
    assert "digits" in list_examples()
    assert example_path("digits").read_text() == (ROOT / "configs/digits.toml").read_text()


def test_cli_lists_examples_and_names_them_for_an_unknown_one(capsys):
    assert cli.main(["train", "--list-examples"]) == 0
    assert capsys.readouterr().out.split() == list_examples()
    assert cli.main(["train", "--example", "no-such-example"]) == 2
    err = capsys.readouterr().err
    assert "'no-such-example'" in err and "digits" in err
    assert cli.main(["train", "configs/digits.toml", "--example", "digits"]) == 2


def test_cli_trains_a_shipped_example(tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--example", "xor", "--out", str(out), "--quiet"]
    assert cli.main(argv + ["--set", "trainer.epochs=2"]) == 0
    assert (out / "model.npz").is_file() and (out / "config.toml").is_file()


# -- the wheel -----------------------------------------------------------------------------------
def _run(args: list, cwd: Path) -> str:
    out = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True)
    assert out.returncode == 0, f"{args}\n{out.stdout}\n{out.stderr}"
    return out.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """sdist and wheel from ``python -m build`` (no isolation: no network, the installed
    setuptools), into a directory outside the checkout."""
    pytest.importorskip("build")
    dist = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, ROOT], cwd=dist)
    return dist


@pytest.mark.slow
def test_wheel_and_sdist_hold_the_package_the_configs_and_the_license(built):
    (wheel,) = built.glob("backprop-*.whl")
    (sdist,) = built.glob("backprop-*.tar.gz")
    assert bp.__version__ in wheel.name and bp.__version__ in sdist.name
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "backprop").rglob("*.py")}
    assert modules - names == set()  # every module of the package
    configs = {f"backprop/app/examples/{p.name}" for p in (ROOT / "configs").glob("*.toml")}
    assert configs - names == set()  # every example config
    meta = zipfile.ZipFile(wheel).read(f"backprop-{bp.__version__}.dist-info/METADATA").decode()
    assert "License-Expression: BSD-3-Clause" in meta
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


@pytest.mark.slow
def test_the_installed_wheel_trains_from_the_command_and_from_python(built, tmp_path):
    """A fresh venv outside the checkout; the dependencies come from this environment (a .pth
    line adds its site-packages, whose editable backprop it does not activate), the package
    from the wheel alone."""
    (wheel,) = built.glob("backprop-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path)
    py = venv / "bin" / "python"
    site = Path(
        _run([py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp_path).strip()
    )
    deps = [p for p in sys.path if p.endswith("site-packages")]
    (site / "zz_outer_env.pth").write_text("\n".join(deps) + "\n")
    _run([sys.executable, "-m", "pip", "--python", py, "install", "--quiet", "--no-deps",
          "--no-index", wheel], cwd=tmp_path)  # fmt: skip

    where = _run(
        [py, "-c", "import backprop; print(backprop.__file__, backprop.__version__)"], tmp_path
    )
    assert where.split()[0].startswith(str(site)), where  # the wheel's copy, not the checkout's
    assert where.split()[1] == bp.__version__

    assert (
        "digits" in _run([venv / "bin" / "backprop", "train", "--list-examples"], tmp_path).split()
    )
    run = tmp_path / "run"
    _run([venv / "bin" / "backprop", "train", "--example", "digits", "--set", "trainer.epochs=2",
          "--out", run, "--quiet"], cwd=tmp_path)  # fmt: skip
    assert (run / "model.npz").is_file() and (run / "config.toml").is_file()

    code = (
        "import numpy as np, backprop as bp\n"
        "from sklearn.datasets import load_digits\n"
        "X, y = load_digits(return_X_y=True)\n"
        "X = (X / 16).astype(np.float32)\n"
        "model = bp.Sequential([bp.Dense(64, 32), bp.ReLU(), bp.Dense(32, 10)], seed=0)\n"
        "bp.Trainer(model, bp.SoftmaxCrossEntropy(), bp.Adam(1e-2), batch_size=64,\n"
        "           epochs=5, seed=0).fit(X, y)\n"
        "print((model.predict(X).argmax(1) == y).mean())\n"
    )
    accuracy = float(_run([py, "-c", code], cwd=tmp_path).split()[-1])
    assert accuracy > 0.85
