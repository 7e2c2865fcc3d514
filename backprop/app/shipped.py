"""The example configs that ship with backprop: ``backprop train --example NAME``.

In a checkout they are the files of ``configs/``; an installed wheel carries the same files as
``backprop/app/examples/`` (setup.py maps one onto the other). Data sets that a config names are
not shipped: the scikit-learn sets and generators work anywhere, MNIST-type configs need the
files of ``scripts/fetch_data.py``.
"""

from __future__ import annotations

from pathlib import Path


def examples_dir() -> Path:
    """The directory that holds the shipped example configs.

    Returns
    -------
    pathlib.Path
        ``backprop/app/examples`` of an installed wheel, else ``configs/`` of the checkout.

    Raises
    ------
    FileNotFoundError
        When neither exists (a broken installation).
    """
    installed = Path(__file__).with_name("examples")
    if installed.is_dir():
        return installed
    checkout = Path(__file__).resolve().parents[2] / "configs"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"no example configs in {installed} or {checkout}")


def list_examples() -> list[str]:
    """Names of the shipped example configs, sorted.

    Returns
    -------
    list of str
        File names without ``.toml`` (``"digits"``, ``"moons"``, ...).
    """
    return sorted(p.stem for p in examples_dir().glob("*.toml"))


def example_path(name: str) -> Path:
    """The config file of the shipped example ``name``.

    Parameters
    ----------
    name : str
        An example's name, as :func:`list_examples` gives it (``"digits"``).

    Returns
    -------
    pathlib.Path
        The ``.toml`` file.

    Raises
    ------
    FileNotFoundError
        For an unknown name; the message lists the known ones.
    """
    path = examples_dir() / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(list_examples())
        raise FileNotFoundError(f"no example config named {name!r}; the examples are: {known}")
    return path
