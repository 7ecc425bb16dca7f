"""Apps depend one way (DESIGN.md, "The map"): backoffice <- payments <- refunds, reports
<- management; an arrow points at what is imported. Checked on the source, with `ast`, so an
import inside a function counts as much as one at the top of a module."""

import ast
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
