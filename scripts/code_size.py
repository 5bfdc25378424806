#!/usr/bin/env python3
"""Lines of Python per package and the largest functions, at any commit (for closing notes on a restructuring).

    python3 scripts/code_size.py [--rev REV] [--top N] [--json]

Reads the tree of REV (default HEAD) from git, not the working tree. A Python file is a `*.py` file or
one whose first line is a python shebang (`firmware/build-bundle`); its package is its top-level
folder. Lines are counted as `wc -l` counts them. A function's size is its lines from `def` (or its
first decorator) to its last line, nested functions and methods included. Exit: 0 done, 2 bad usage
(not a git checkout, unknown REV).
"""
from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], check=True, capture_output=True, text=True).stdout


def python_files(rev: str) -> dict[str, str]:
    """Path -> text of every Python file in `rev`."""
    out = {}
    for path in git("ls-tree", "-r", "--name-only", rev).splitlines():
        if "/" not in path:
            continue
        text = git("show", f"{rev}:{path}") if path.endswith(".py") or "." not in path.rsplit("/", 1)[1] else ""
        if path.endswith(".py") or (text.startswith("#!") and "python" in text.split("\n", 1)[0]):
            out[path] = text
    return out


def functions(path: str, text: str) -> list[tuple[int, str]]:
    """(lines, "path:line name") of every function and method in the file."""
    try:
        tree = ast.parse(text, path)
    except SyntaxError:
        return []
    found = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([child.lineno] + [d.lineno for d in child.decorator_list])
                found.append((child.end_lineno - first + 1, f"{path}:{child.lineno} {prefix}{child.name}"))
                walk(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}{child.name}.")
            else:
                walk(child, prefix)

    walk(tree, "")
    return found


def measure(rev: str, top: int) -> dict:
    files = python_files(rev)
    lines = Counter()
    for path, text in files.items():
        lines[path.split("/")[0]] += text.count("\n") + (0 if text.endswith("\n") or not text else 1)
    sizes = sorted((f for path, text in files.items() for f in functions(path, text)), reverse=True)
    return {"rev": git("rev-parse", "--short", rev).strip(), "lines": dict(sorted(lines.items())),
            "total": sum(lines.values()), "files": len(files),
            "largest_functions": [{"lines": n, "where": w} for n, w in sizes[:top]]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rev", default="HEAD", help="the commit to measure (default HEAD)")
    p.add_argument("--top", type=int, default=10, help="how many of the largest functions (default 10)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    try:
        doc = measure(args.rev, args.top)
    except subprocess.CalledProcessError as exc:
        print(f"code_size: git: {exc.stderr.strip()}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(doc, indent=1))
        return 0
    print(f"{doc['rev']}: {doc['total']} lines of Python in {doc['files']} files")
    for package, n in doc["lines"].items():
        print(f"  {package:<14} {n:>7}")
    print("largest functions:")
    for f in doc["largest_functions"]:
        print(f"  {f['lines']:>5}  {f['where']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
