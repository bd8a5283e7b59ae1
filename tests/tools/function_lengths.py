"""The longest functions of the package: ``python -m tests.tools.function_lengths [N]`` prints the N longest
(default 10) with their length in lines, from the ``def`` line to the last line of the body."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schema", "actors", "cluster", "serve_app")


def function_lengths() -> list[tuple[int, str]]:
    """(lines, "path:line name") of every function and method, longest first."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = node.end_lineno - node.lineno + 1
                    found.append((length, f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"))
    return sorted(found, key=lambda item: (-item[0], item[1]))


def main(argv: list[str]) -> None:
    count = int(argv[0]) if argv else 10
    print("| lines | function |\n|---|---|")
    for length, where in function_lengths()[:count]:
        print(f"| {length} | `{where}` |")


if __name__ == "__main__":
    main(sys.argv[1:])
