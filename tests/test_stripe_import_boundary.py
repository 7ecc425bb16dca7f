"""Only the payments/gateway/ package imports `stripe` (ruff TID251 says the same at lint
time; this holds without ruff, and catches `from stripe... import` and imports inside
functions). tests/ and scripts/ drive the SDK directly against localstripe and are exempt."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GATEWAY = ROOT / "payments" / "gateway"
EXEMPT = {"tests", "scripts"}


def imports_stripe(tree: ast.AST) -> list[int]:
    """Line numbers of every `import stripe[.x]` / `from stripe[.x] import ...`."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        if any(name == "stripe" or name.startswith("stripe.") for name in names):
            lines.append(node.lineno)
    return lines


def source_files():
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        # Hidden folders hold the virtualenv (.venv) and tool caches, not our code.
        if parts[0] in EXEMPT or any(part.startswith(".") for part in parts):
            continue
        yield path


def test_only_the_gateway_package_imports_stripe():
    importers = {}
    for path in source_files():
        lines = imports_stripe(ast.parse(path.read_text(), filename=str(path)))
        if lines:
            importers[path] = lines
    outside = {
        f"{path.relative_to(ROOT)}:{lines}"
        for path, lines in importers.items()
        if not path.is_relative_to(GATEWAY)
    }
    assert outside == set()
    # Not vacuous: the walk does reach the gateway, which does import the SDK.
    assert any(path.is_relative_to(GATEWAY) for path in importers)


def test_the_check_sees_every_form_of_import():
    source = "\n".join(
        [
            "import stripe",
            "import os, stripe.error",
            "from stripe import Webhook",
            "from stripe._error import CardError",
            "def f():",
            "    import stripe as s",
            "from stripe_like import x",
            "from .stripe import y",
        ]
    )
    assert imports_stripe(ast.parse(source)) == [1, 2, 3, 4, 6]
