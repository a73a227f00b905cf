"""The package's shape: data flows one way (no import cycles, function-level imports counted) and
no module reaches into another's private names."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "lavin_cli"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, list[str]]]:
    """(imported lavin_cli module, names taken from it) for every import statement, at any depth."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.append((sub, []) if sub in modules else (base, [alias.name]))
    resolved = []
    for target, names in out:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target.startswith("lavin_cli") and target != name:
            resolved.append((target, names))
    return resolved


def _edges() -> dict[str, set[str]]:
    modules = _modules()
    edges = {m: set() for m in modules}
    for name, path in modules.items():
        for target, _ in _imports(name, path, modules):
            if target != "lavin_cli" and not name.startswith(target + "."):  # a package's own __init__ is not an edge
                edges[name].add(target)
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_the_walker_sees_function_level_imports_and_finds_cycles():
    edges = _edges()
    assert "lavin_cli.inference.pipeline" in edges["lavin_cli.cli.source"]  # imported inside a method
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles_anywhere_in_the_package():
    assert _cycles(_edges()) == []


def test_no_module_uses_another_modules_private_names():
    modules = _modules()
    offenders = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        aliases = {}
        for target, names in _imports(name, path, modules):
            offenders += [f"{name} imports {target}.{n}" for n in names if n.startswith("_") and not n.startswith("__")]
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lavin_cli"):
                for alias in node.names:
                    if f"{node.module}.{alias.name}" in modules:
                        aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases \
                    and node.attr.startswith("_") and not node.attr.startswith("__"):
                offenders.append(f"{name} uses {aliases[node.value.id]}.{node.attr}")
    assert offenders == []


def test_tests_use_no_private_names():
    """Tests drive the package through its public names: no `from lavin_cli.x import _y`, no
    `module._y` or `Class._y` of a lavin_cli name, no monkeypatch of a private attribute (a
    renamed internal must not quietly turn a test into one that cannot fail)."""
    offenders = []
    for path in sorted(Path(__file__).parent.glob("*.py")):
        tree = ast.parse(path.read_text())
        ours = set()  # local names bound to lavin_cli modules or their members
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lavin_cli"):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        offenders.append(f"{path.name}:{node.lineno} imports {node.module}.{alias.name}")
                    ours.add(alias.asname or alias.name)
            elif isinstance(node, ast.Import):
                ours.update(a.asname for a in node.names if a.name.startswith("lavin_cli") and a.asname)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                root = node.value
                while isinstance(root, ast.Attribute):
                    root = root.value
                if isinstance(root, ast.Name) and root.id in ours:
                    offenders.append(f"{path.name}:{node.lineno} uses {root.id}...{node.attr}")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "setattr":
                strings = [a.value for a in node.args[:2] if isinstance(a, ast.Constant) and isinstance(a.value, str)]
                for text in strings:
                    last = text.split(".")[-1]
                    if last.startswith("_") and not last.startswith("__") and (text.startswith("lavin_cli") or
                                                                                "." not in text):
                        offenders.append(f"{path.name}:{node.lineno} patches {text}")
    assert offenders == []


def test_model_json_has_one_writer():
    """model.json is written by store/folders.write_model_json only (atomic, read back by its reader)."""
    import re

    writers = []
    for path in PACKAGE.rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if "model.json" in line and re.search(r"write_text|write_atomic|open\(.*['\"]w", line):
                writers.append(f"{path.relative_to(PACKAGE)}:{n}")
    assert not writers, writers
    source = (PACKAGE / "store" / "folders.py").read_text()
    assert "def write_model_json" in source


def test_manifest_has_one_writer_beside_its_reader():
    """manifest.json is written (store/manifest.write_manifest) in the module that reads and
    verifies it; nothing else writes a file named by MANIFEST."""
    import re

    writers = []
    for path in PACKAGE.rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"MANIFEST|manifest\.json", line) and re.search(r"write_text|write_atomic|open\(.*['\"]w", line):
                writers.append(f"{path.relative_to(PACKAGE)}:{n}")
    assert writers == [f"store/manifest.py:{n}" for n in _lines(PACKAGE / "store" / "manifest.py", "write_atomic(folder / MANIFEST")]


def _lines(path: Path, text: str) -> list[int]:
    return [n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line]
