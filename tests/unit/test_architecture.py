"""The layers, checked by machine over the import graph (imports inside functions and under
TYPE_CHECKING count too): cli > api > effects > core > errors, no cycle anywhere, a core
that touches no file, clock, process, network or environment, and a CLI that reaches the
effects only through the api."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "dockerpkg"

# Standard and third-party modules the core must not import: they are I/O, clocks,
# processes, randomness or the environment, which callers pass in as values.
IMPURE = frozenset(
    {
        "os",
        "sys",
        "time",
        "datetime",
        "random",
        "socket",
        "ssl",
        "threading",
        "subprocess",
        "multiprocessing",
        "concurrent",
        "signal",
        "shutil",
        "tempfile",
        "pathlib",
        "glob",
        "io",
        "logging",
        "http",
        "urllib3",
        "requests",
        "docker",
        "fcntl",
    }
)
# Each layer, and what it may import of the package besides itself and the layers below.
LAYERS = ("errors", "core", "effects", "api", "cli")


def layer(module: str) -> str:
    """The layer of a module of the package, by its dotted name."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in ("core", "effects", "api", "cli"):
        return parts[1]
    if parts[-1] in ("errors",):
        return "errors"
    return "cli"  # __main__, the package itself


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> tuple[set[str], set[str]]:
    """The package's modules PATH imports, and the top-level names of the others."""
    inside, outside = set(), set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from package import module` imports the module; `from module import name`
            # the module.
            base = node.module
            names = [m if (m := f"{base}.{alias.name}") in known else base for alias in node.names]
        else:
            continue
        for name in names:
            if name in known:
                inside.add(name)
            elif not name.startswith("dockerpkg"):
                outside.add(name.split(".")[0])
    return inside, outside


GRAPH = {name: imports(path, modules()) for name, path in modules().items()}


def test_the_graph_is_read() -> None:
    assert "dockerpkg.core.planner" in GRAPH
    assert "dockerpkg.core.plan" in GRAPH["dockerpkg.core.planner"][0]
    assert "attrs" in GRAPH["dockerpkg.core.plan"][1]


def test_no_import_cycle() -> None:
    sorter = graphlib.TopologicalSorter(
        {name: {m for m in inside if m != name} for name, (inside, _) in GRAPH.items()}
    )
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


@pytest.mark.parametrize("name", sorted(GRAPH))
def test_layers_import_downwards_only(name: str) -> None:
    mine = LAYERS.index(layer(name))
    upward = sorted(m for m in GRAPH[name][0] if LAYERS.index(layer(m)) > mine)
    assert upward == [], f"{name} ({layer(name)}) imports {upward}"


@pytest.mark.parametrize("name", sorted(n for n in GRAPH if layer(n) == "core"))
def test_the_core_is_pure(name: str) -> None:
    assert sorted(GRAPH[name][1] & IMPURE) == [], f"{name} imports I/O, clocks or processes"


def cli_effects(name: str) -> list[str]:
    """The modules of the effects layer the module NAME of the CLI imports."""
    return sorted(m for m in GRAPH[name][0] if layer(m) == "effects")


@pytest.mark.parametrize("name", sorted(n for n in GRAPH if n.startswith("dockerpkg.cli")))
def test_the_cli_imports_no_effects(name: str) -> None:
    # The CLI parses, calls the api, prints: what it needs of the effects, the api gives.
    assert cli_effects(name) == [], f"{name} imports {cli_effects(name)}; use dockerpkg.api"


def test_the_layer_rule_would_catch_a_breach() -> None:
    # The checks are only worth something if they see what they look for.
    assert layer("dockerpkg.effects.apply") == "effects"
    assert layer("dockerpkg.core.tree") == "core"
    assert layer("dockerpkg.api.versioning") == "api"
    assert layer("dockerpkg.cli.review") == "cli"
    assert "dockerpkg.effects.links" in GRAPH["dockerpkg.effects.tree"][0]
    assert LAYERS.index(layer("dockerpkg.effects.tree")) > LAYERS.index("core")
    # The CLI rule looks through the api: the api itself does import effects.
    assert layer("dockerpkg.effects.treelock") == "effects"
    assert "dockerpkg.effects.treelock" in GRAPH["dockerpkg.api.saved"][0]
    assert any(n.startswith("dockerpkg.cli.") for n in GRAPH)


# Sizes past which a module or a function has more than one job (see docs/design.md).
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def test_modules_and_functions_stay_small() -> None:
    too_big = []
    for name, path in sorted(modules().items()):
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_big.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_big.append(f"{name}.{node.name}: {length} lines")
    assert too_big == []


# What reads or changes the process's environment: the run's environment is read once, at the
# edge (cli/main.py, or a library caller), and passed down as a value.
ENVIRONMENT_READS = frozenset({"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"})
# What reads HOME behind the caller's back (`os.path.expanduser`, `Path.expanduser`,
# `Path.home`): effects/homes.py's `expand_user` takes the run's environment instead.
HOME_READS = frozenset({"expanduser"})
PATH_CLASSES = frozenset({"Path", "pathlib.Path", "PosixPath", "pathlib.PosixPath"})


def environment_reads(tree: ast.Module) -> list[int]:
    """The lines of TREE that touch `os.environ` and its kin, outside an `if __name__ ==
    "__main__":` block (a program of its own, started with the environment its parent gave)."""
    found = []
    for statement in tree.body:
        if isinstance(statement, ast.If) and "__main__" in ast.unparse(statement.test):
            continue
        for node in ast.walk(statement):
            read: bool
            if isinstance(node, ast.Attribute):
                read = (
                    (node.attr in ENVIRONMENT_READS and ast.unparse(node.value) == "os")
                    or node.attr in HOME_READS
                    or (node.attr == "home" and ast.unparse(node.value) in PATH_CLASSES)
                )
            elif isinstance(node, ast.ImportFrom):
                names = {a.name for a in node.names}
                read = (node.module == "os" and bool(names & ENVIRONMENT_READS)) or (
                    node.module in ("os.path", "posixpath") and bool(names & HOME_READS)
                )
            else:
                read = False
            if read:
                found.append(getattr(node, "lineno", 0))
    return found


@pytest.mark.parametrize("name", sorted(n for n in GRAPH if layer(n) == "effects"))
def test_effects_never_read_the_environment(name: str) -> None:
    tree = ast.parse(modules()[name].read_text(encoding="utf-8"))
    assert environment_reads(tree) == [], f"{name} reads the process's environment"


def test_the_environment_rule_would_catch_a_breach() -> None:
    assert environment_reads(ast.parse("import os\nx = os.environ.get('HOME')")) == [2]
    assert environment_reads(ast.parse("import os\ndef f():\n    return os.getenv('X')")) == [3]
    assert environment_reads(ast.parse("from os import environ")) == [1]
    assert environment_reads(ast.parse("if __name__ == '__main__':\n    main(os.environ)")) == []


def test_the_environment_rule_would_catch_a_read_of_home() -> None:
    assert environment_reads(ast.parse("import os\np = os.path.expanduser('~/x')")) == [2]
    assert environment_reads(ast.parse("from os.path import expanduser")) == [1]
    assert environment_reads(ast.parse("from pathlib import Path\nh = Path.home()")) == [2]
    assert environment_reads(ast.parse("import pathlib\nh = pathlib.Path('~').expanduser()")) == [2]
    # A home given by the caller, or an attribute that only shares the name, is no read.
    assert environment_reads(ast.parse("h = expand_user('~/x', env)\nh = run.home")) == []


# A class past this many lines (decorators aside, measured as functions are) holds more than
# one job: see docs/design.md.
MAX_CLASS_LINES = 250


def big_classes(name: str, text: str) -> dict[str, int]:
    """The classes of module NAME (its source TEXT) over the cap, with their lengths."""
    found = {}
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ClassDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_CLASS_LINES:
                found[f"{name}.{node.name}"] = length
    return found


def test_classes_stay_small() -> None:
    found: dict[str, int] = {}
    for name, path in sorted(modules().items()):
        found.update(big_classes(name, path.read_text(encoding="utf-8")))
    assert found == {}


def test_the_class_rule_would_catch_a_breach() -> None:
    body = "".join(f"    x{n} = {n}\n" for n in range(MAX_CLASS_LINES - 1))
    at_cap = f"@decorated\nclass Fits:\n{body}"
    over = f"class Big:\n{body}    one_more = 1\n"
    assert big_classes("m", at_cap) == {}
    assert big_classes("m", over) == {"m.Big": MAX_CLASS_LINES + 1}


# The pytest plugin is a front end as the CLI is: it reaches dockerpkg through the library
# (and the pure core's values), never the effects.
PLUGIN_MAY_IMPORT = (
    "dockerpkg.api",
    "dockerpkg.core",
    "dockerpkg.errors",
    "dockerpkg.pytestplugin",
)


def plugin_imports(name: str) -> list[str]:
    """The modules of the package outside the api, the core and errors that NAME imports."""
    return sorted(
        m
        for m in GRAPH[name][0]
        if not any(m == allowed or m.startswith(allowed + ".") for allowed in PLUGIN_MAY_IMPORT)
    )


@pytest.mark.parametrize("name", sorted(n for n in GRAPH if n.startswith("dockerpkg.pytestplugin")))
def test_the_pytest_plugin_imports_the_api_and_the_core_only(name: str) -> None:
    assert plugin_imports(name) == [], f"{name} imports {plugin_imports(name)}; use dockerpkg.api"


def test_the_plugin_rule_would_catch_a_breach() -> None:
    assert "dockerpkg.pytestplugin.plugin" in GRAPH
    assert "dockerpkg.api.review" in GRAPH["dockerpkg.pytestplugin.state"][0]
    # A module importing the effects, as the api's do, would be refused.
    assert plugin_imports("dockerpkg.api.review") != []
