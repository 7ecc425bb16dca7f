"""Apps depend one way (DESIGN.md, "The map"): backoffice <- payments <- refunds, reports
<- management; an arrow points at what is imported. Checked on the source, with `ast`, so an
import inside a function counts as much as one at the top of a module."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# app -> the apps it must never import. refunds and reports both sit on payments; reports
# reads refunds (exports, rollups, the dashboard), so refunds never imports reports.
FORBIDDEN = {
    "backoffice": {"payments", "refunds", "reports", "management"},
    "payments": {"refunds", "reports", "management"},
    "refunds": {"reports", "management"},
    "reports": {"management"},
}

# backoffice/ is both the lowest app (audit, the admin site) and the project around all apps.
# Two project modules may import an app: the URLconf, which mounts every app's views, and the
# settings' env parser, which checks money thresholds with payments.money's currency rules
# (plain Python, no models). Nothing else may be added here.
KNOWN_EXCEPTIONS = {
    ("backoffice/urls.py", "payments"),
    ("backoffice/settings/env.py", "payments"),
}


def imported_apps(path: Path) -> set[str]:
    """Top-level packages a module imports absolutely (relative imports stay in the app)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def upward_imports(app: str) -> set[tuple[str, str]]:
    return {
        (path.relative_to(ROOT).as_posix(), imported)
        for path in sorted((ROOT / app).rglob("*.py"))
        for imported in imported_apps(path) & FORBIDDEN[app]
    }


@pytest.mark.parametrize("app", sorted(FORBIDDEN))
def test_no_app_imports_an_app_above_it(app):
    found = upward_imports(app) - KNOWN_EXCEPTIONS
    assert found == set(), f"{app} imports apps above it: {sorted(found)}"


def test_every_known_exception_still_exists():
    """When the fix lands, its allowance goes too (or it would hide the next one)."""
    found = set().union(*(upward_imports(app) for app in FORBIDDEN))
    stale = KNOWN_EXCEPTIONS - found
    assert stale == set(), f"fixed: remove from KNOWN_EXCEPTIONS: {sorted(stale)}"


def test_the_checker_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "from . import sibling\n"
        "import reports.rollups\n"
        "def f():\n"
        "    from management.jobs import stripe_sync\n"
    )
    assert imported_apps(module) == {"reports", "management"}


# --- No import cycles between modules ---------------------------------------------------------

APPS = ["backoffice", "payments", "refunds", "reports", "management"]


def project_modules() -> dict[str, Path]:
    modules = {}
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    return modules


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the project modules it imports (relative imports resolved, `from a import b`
    counted as a.b when b is a module, imports inside functions included)."""
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names if alias.name in modules)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")
                    parts = parts[: len(parts) - node.level + 1]
                    base = ".".join([*parts, node.module] if node.module else parts)
                else:
                    base = node.module or ""
                for alias in node.names:
                    if f"{base}.{alias.name}" in modules:
                        deps.add(f"{base}.{alias.name}")
                    elif base in modules:
                        deps.add(base)
        deps.discard(name)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_module_imports_a_module_that_imports_it_back():
    assert cycles(import_graph(project_modules())) == []


def test_the_cycle_finder_finds_a_lazy_cycle(tmp_path):
    graph = {"a.x": {"a.y"}, "a.y": {"a.z"}, "a.z": {"a.x"}, "a.w": {"a.x"}}
    assert cycles(graph) == [["a.x", "a.y", "a.z"]]
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "one.py").write_text("def f():\n    from .two import g\n")
    (package / "two.py").write_text("from pkg import one\n")
    modules = {"pkg": package / "__init__.py", "pkg.one": package / "one.py"}
    modules["pkg.two"] = package / "two.py"
    assert cycles(import_graph(modules)) == [["pkg.one", "pkg.two"]]


# --- The same, as Python sees it ---------------------------------------------------------------

IMPORT_EVERY_PAYMENTS_MODULE = """
import importlib, json, pkgutil, sys
from django.conf import settings
ABOVE = ("refunds", "reports", "management")
settings.INSTALLED_APPS = [a for a in settings.INSTALLED_APPS if a not in ABOVE]
import django
django.setup()
import payments
names = [m.name for m in pkgutil.walk_packages(payments.__path__, "payments.")]
names = [n for n in names if ".migrations" not in n]
for name in names:
    importlib.import_module(name)
print(json.dumps({"imported": len(names),
                  "above": sorted(m for m in sys.modules if m.split(".")[0] in ABOVE)}))
"""


def test_payments_runs_without_the_apps_above_it():
    """`python -c`: Django with payments but without refunds, reports and management, every
    payments module imported: none of the apps above is loaded on the way."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "backoffice.settings.test"}
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERY_PAYMENTS_MODULE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["imported"] > 30
    assert report["above"] == []
