"""Packaging that pyproject.toml cannot say: configs/ of the checkout ships as the package
``backprop.app.examples``, so that an installed ``backprop train --example digits`` finds it.
Everything else (name, version, license, dependencies, extras) is in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["backprop", "backprop.*"]) + ["backprop.app.examples"],
    package_dir={"backprop.app.examples": "configs"},
    package_data={"backprop.app.examples": ["*.toml"]},
)
