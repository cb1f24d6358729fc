"""A small linter with nothing but the standard library, so it runs in the app's own image: every file compiles,
no import is left unused, no line is too long, no tab indents, no trailing whitespace.

Usage: python3 tools/lint.py PATH... (directories are searched for *.py). Exit 1 on any finding.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MAX_LINE = 120


def _unused_imports(tree: ast.Module) -> list[tuple[int, str]]:
    imported: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom) and not (
            isinstance(node, ast.ImportFrom) and node.module == "__future__"
        ):
            for alias in node.names:
                imported[(alias.asname or alias.name).split(".")[0]] = node.lineno
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    used |= {n.value.id for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)}
    exported = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            exported = {e.value for e in getattr(node.value, "elts", []) if isinstance(e, ast.Constant)}
    return [(line, name) for name, line in imported.items() if name not in used | exported]


def lint(path: Path) -> list[str]:
    text = path.read_text()
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as exc:
        return [f"{path}:{exc.lineno}: syntax error: {exc.msg}"]
    findings = [f"{path}:{line}: unused import {name!r}" for line, name in _unused_imports(tree)]
    for number, line in enumerate(text.splitlines(), start=1):
        if len(line) > MAX_LINE:
            findings.append(f"{path}:{number}: line longer than {MAX_LINE} characters")
        if line != line.rstrip():
            findings.append(f"{path}:{number}: trailing whitespace")
        if line.startswith("\t"):
            findings.append(f"{path}:{number}: indented with a tab")
    return findings


def main(argv: list[str]) -> int:
    files = [f for arg in argv for f in (sorted(Path(arg).rglob("*.py")) if Path(arg).is_dir() else [Path(arg)])]
    findings = [finding for path in files for finding in lint(path)]
    print("\n".join(findings) if findings else f"{len(files)} file(s) clean")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
