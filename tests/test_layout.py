"""The architecture docs/layout.md promises: the library never imports the
application (``backprop.app``), and ``import backprop`` loads no matplotlib and no TOML parsing."""

import ast
import subprocess
import sys
from pathlib import Path

import backprop

PACKAGE = Path(backprop.__file__).parent


def library_modules() -> list[Path]:
    """Every module of the package but the application and ``__main__`` (``python -m backprop``,
    the command's entry point, which is the application's front door)."""
    return [
        p
        for p in PACKAGE.rglob("*.py")
        if "app" not in p.relative_to(PACKAGE).parts and p.name != "__main__.py"
    ]


def imported_names(path: Path) -> list[tuple[int, str]]:
    """Every module a file imports, absolute or resolved from a relative import, with its line."""
    package = ".".join(("backprop",) + path.relative_to(PACKAGE).parent.parts)
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out += [(node.lineno, f"{mod}.{a.name}" if a.name != "*" else mod) for a in node.names]
    return out


def test_library_files_never_import_the_application():
    offenders = []
    for path in library_modules():
        for line, name in imported_names(path):
            if name.startswith("backprop.app"):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}")
    # The one exception: backprop/__init__.py forwards bp.load_config / bp.ConfigError lazily,
    # from inside a module-level __getattr__, so importing backprop does not import the app.
    offenders = [o for o in offenders if not o.startswith("backprop/__init__.py")]
    assert offenders == []


def test_importing_every_library_module_loads_no_application_and_no_matplotlib():
    names = [
        ".".join(("backprop",) + p.relative_to(PACKAGE).with_suffix("").parts).removesuffix(
            ".__init__"
        )
        for p in library_modules()
    ]
    code = (
        "import importlib, sys\n"
        f"for n in {sorted(names)!r}: importlib.import_module(n)\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('backprop.app', 'matplotlib', "
        "'tomllib')))\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_load_config_is_still_reachable_from_the_top_level(tmp_path):
    import backprop as bp

    assert bp.load_config.__module__ == "backprop.app.config"
    assert issubclass(bp.ConfigError, Exception)


# -- issue 12.7: no module over about 400 lines -----------------------------------------------
MAX_MODULE_LINES = 400


def test_no_module_is_over_400_lines():
    """Every module of the package, library and application, at most 400 lines: a file that
    grows past it is split by concept (STYLE.md), not trimmed of its docstrings."""
    too_long = sorted(
        (n, str(p.relative_to(PACKAGE.parent)))
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    )
    listed = ", ".join(f"{path} ({n} lines)" for n, path in too_long)
    assert too_long == [], f"modules over {MAX_MODULE_LINES} lines: {listed}"
