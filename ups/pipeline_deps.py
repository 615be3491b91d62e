"""The code each DVC stage runs, computed from its imports, so that `dvc.yaml`'s code deps are complete.

A stage `NAME` runs `stages/NAME.py`; the files it depends on are that script and every `ups` module
it imports, directly or through other `ups` modules (imports inside functions included, and each
package's `__init__.py`). `ups pipeline deps --write` rewrites the code deps of every stage in
`dvc.yaml` from this closure (data, checkpoints and other non-code deps are kept as they are);
`ups pipeline deps` lists what is missing, and a test fails when anything is, so a change to a module
a stage runs can never leave that stage's results stale.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

CODE_PREFIXES = ("stages/", "ups/", "ups")


def _module_file(root: Path, name: str) -> Path | None:
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _imported_modules(path: Path) -> set[str]:
    """Absolute module names a file imports (`from a.b import c` gives a.b and, if a module, a.b.c)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n == "ups" or n.startswith("ups.")}


def import_closure(root: Path | str, entry: Path | str) -> list[str]:
    """`entry` and every `ups` file it reaches by imports, as sorted paths relative to `root`."""
    root = Path(root)
    seen: set[Path] = set()
    todo = [root / entry]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imported_modules(path):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # the packages on the way are imported too
                found = _module_file(root, ".".join(parts[:i]))
                if found is not None and found not in seen:
                    todo.append(found)
    return sorted(str(p.relative_to(root)) for p in seen)


def _stages(root: Path) -> dict:
    return yaml.safe_load((root / "dvc.yaml").read_text())["stages"]


def _is_code(dep: str) -> bool:
    return dep.startswith(CODE_PREFIXES[:2]) or dep == "ups"


def _covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


def missing_deps(root: Path | str = ".") -> dict[str, list[str]]:
    """For each stage, the files it runs that its deps in `dvc.yaml` do not cover."""
    root = Path(root)
    out = {}
    for name, stage in _stages(root).items():
        deps = [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]
        missing = [f for f in import_closure(root, f"stages/{name}.py") if not _covered(f, deps)]
        if missing:
            out[name] = missing
    return out


def write_deps(root: Path | str = ".") -> list[str]:
    """Rewrite every stage's code deps in `dvc.yaml` from its import closure; return the stages changed."""
    root = Path(root)
    stages = _stages(root)
    lines = (root / "dvc.yaml").read_text().splitlines()
    out, changed, stage, i = [], [], None, 0
    while i < len(lines):
        line = lines[i]
        header = re.match(r"^  ([A-Za-z0-9_-]+):\s*$", line)
        if header and header.group(1) in stages:
            stage = header.group(1)
        out.append(line)
        i += 1
        if stage and re.match(r"^    deps:\s*$", line):
            old = []
            while i < len(lines) and re.match(r"^      - ", lines[i]):
                old.append(lines[i][len("      - ") :].strip())
                i += 1
            new = import_closure(root, f"stages/{stage}.py") + [d for d in old if not _is_code(d)]
            if new != old:
                changed.append(stage)
            out += [f"      - {d}" for d in new]
    (root / "dvc.yaml").write_text("\n".join(out) + "\n")
    return changed
