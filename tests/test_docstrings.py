"""The docstring rule: every public name (``bp.__all__`` and the estimators) documents its
parameters and what it returns in numpydoc sections, which the site's API reference renders.

Classes need a ``Parameters`` section (result dataclasses may use ``Attributes``), functions a
``Parameters`` section when they take arguments and a ``Returns`` section when they return
something, and the methods a user calls on the main objects a ``Returns`` section. Every name a
``Parameters`` section lists must be a real parameter, so the docs cannot drift from the code."""

from __future__ import annotations

import dataclasses
import inspect
import re

import pytest

import backprop as bp

SECTION = re.compile(r"^(\w[\w ]*)\n-{3,}\s*$", re.M)

# The methods people call on the main objects: each says what it returns.
METHODS = {
    "MLPClassifier": ["predict", "predict_proba", "predict_log_proba"],
    "MLPRegressor": ["predict"],
    "NeuralNetClassifier": ["predict", "predict_proba"],
    "NeuralNetRegressor": ["predict"],
    "Trainer": ["fit", "evaluate", "predict", "state_dict"],
    "Sequential": ["forward", "backward", "predict", "summary"],
}


def sections(doc: str) -> dict[str, str]:
    """``{title: body}`` of a dedented numpydoc docstring."""
    heads = list(SECTION.finditer(doc))
    return {
        m.group(1): doc[m.end() : heads[i + 1].start() if i + 1 < len(heads) else len(doc)]
        for i, m in enumerate(heads)
    }


def documented_names(body: str) -> set[str]:
    """The parameter names of a Parameters section: unindented lines ``a, b : type``."""
    names = set()
    for line in body.splitlines():
        if line and not line[0].isspace():
            names |= {n.strip().lstrip("*") for n in line.split(" : ")[0].split(",")}
    return names - {""}


def signature(obj) -> inspect.Signature:
    try:
        return inspect.signature(obj)
    except ValueError:  # a dict subclass without its own signature
        return inspect.signature(obj.__init__)


def arguments(obj, star: bool = False) -> list[str]:
    """Parameter names but ``self``; ``*args``/``**kwargs`` only with ``star``."""
    skip = () if star else (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [
        p.name
        for p in signature(obj).parameters.values()
        if p.name != "self" and p.kind not in skip
    ]


def returns_something(func) -> bool:
    return signature(func).return_annotation not in (None, "None", inspect.Signature.empty)


def public_objects() -> list[tuple[str, object]]:
    out = []
    for name in bp.__all__:
        obj = getattr(bp, name)
        if inspect.ismodule(obj) or (inspect.isclass(obj) and issubclass(obj, BaseException)):
            continue
        out.append((name, obj))
    return out


def problems(name: str, obj) -> list[str]:
    doc = inspect.getdoc(obj)
    if not doc or doc == inspect.getdoc(object):
        return [f"{name}: no docstring"]
    found = sections(doc)
    out = []
    params = arguments(obj)
    if inspect.isclass(obj):
        if dataclasses.is_dataclass(obj) and "Attributes" in found:
            pass
        elif params and "Parameters" not in found:
            out.append(f"{name}: no Parameters section")
    else:
        if params and "Parameters" not in found:
            out.append(f"{name}: no Parameters section")
        if returns_something(obj) and "Returns" not in found:
            out.append(f"{name}: no Returns section")
    if "Parameters" in found:
        unknown = documented_names(found["Parameters"]) - set(arguments(obj, star=True))
        if unknown:
            out.append(f"{name}: Parameters names what it does not take: {sorted(unknown)}")
    return out


def test_the_public_names_are_the_ones_checked():
    names = [n for n, _ in public_objects()]
    assert {"Dense", "Sequential", "Trainer", "check_gradients", "MLPClassifier"} <= set(names)
    assert {"NeuralNetClassifier", "NeuralNetRegressor", "MLPRegressor"} <= set(names)


@pytest.mark.parametrize("name", [n for n, _ in public_objects()])
def test_public_name_documents_parameters_and_returns(name):
    assert problems(name, getattr(bp, name)) == []


@pytest.mark.parametrize("cls,method", [(c, m) for c, ms in METHODS.items() for m in ms])
def test_method_documents_what_it_returns(cls, method):
    func = getattr(getattr(bp, cls), method)
    doc = inspect.getdoc(func) or ""
    assert returns_something(func)
    assert "Returns" in sections(doc), f"{cls}.{method}: no Returns section"
    if "Parameters" in sections(doc):
        unknown = documented_names(sections(doc)["Parameters"]) - set(arguments(func))
        assert unknown == set(), f"{cls}.{method}: {sorted(unknown)}"


def test_the_rule_catches_a_missing_section_and_a_stale_name():
    def no_returns(x: int) -> int:
        """Double ``x``.

        Parameters
        ----------
        x : int
            A number.
        """
        return 2 * x

    def stale(x: int) -> None:
        """Nothing.

        Parameters
        ----------
        x, y : int
            Numbers.
        """

    assert problems("no_returns", no_returns) == ["no_returns: no Returns section"]
    assert problems("stale", stale) == ["stale: Parameters names what it does not take: ['y']"]


def test_the_api_reference_lists_every_public_name():
    """docs/api.rst (the site's API reference) has an autosummary entry for each name."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "api.rst").read_text()
    listed = set(re.findall(r"^   (\w+)$", text, flags=re.M))
    assert set(bp.__all__) - listed == set()
    assert listed - set(bp.__all__) == set()
