"""The package's layers, read from the imports: each layer imports only those below it.

           settings                 typed settings: keys, defaults, allowed values, help; no torch
          ↗        ↖
    method   models                 plain PyTorch / Hugging Face loading (method: settings only)
      ↑        ↑
      │      data                   data modules, prompts (models: tokenizers, cache; settings: their defaults)
      │        ↑
    lightning  eval    config       Lightning modules · evaluation sets, generation, grading · Hydra
      ↑        ↑        ↑           (config reads the typed settings, and the schedule names of lightning)
    train  evaluate  report         entry points: import any layer, never each other

``integrations`` (the method in transformers' and TRL's trainers) sits beside ``lightning`` and
imports only ``method``, ``models`` (a quantized base's preparation) and ``settings``.

``settings`` is the lowest layer, so that the method (``SVDConfig``, the accumulator options),
the Lightning module and the config check share one declaration of each setting, and the
command line checks a config without importing torch (``settings`` imports no heavy library).

Inside a layer, files may import each other, but never in a cycle (imports inside functions
count too: a deferred import only hides a cycle).
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lorasb"

ALLOWED = {
    "settings": set(),
    "method": {"settings"},
    "models": set(),
    "data": {"models", "settings"},
    "eval": {"data", "models", "settings"},
    "lightning": {"method", "data", "models", "settings"},
    "config": {"models", "lightning", "settings"},
    "integrations": {"method", "models", "settings"},
    "__init__": {"method"},
}
ENTRY_POINTS = {"train", "evaluate", "report", "export", "bench", "cache"}
# The method is usable from any training loop: no training framework or config system in it.
FORBIDDEN_THIRD_PARTY = {
    "method": {"lightning", "hydra", "omegaconf", "datasets"},
    "integrations": {"lightning", "hydra", "omegaconf"},
    "settings": {"torch", "lightning", "transformers", "datasets", "hydra", "omegaconf"},
}


def layer_of(path: Path) -> str:
    """``method`` for lorasb/method/layer.py, ``train`` for lorasb/train.py."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def imports(path: Path, root: Path = PACKAGE) -> set[str]:
    """Every module a file of the package at ``root`` imports, relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(("lorasb", *path.relative_to(root).parent.parts))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                found.add(f"{base}.{node.module}" if node.module else base)
            else:
                found.add(node.module)
    return found


FILES = sorted(PACKAGE.rglob("*.py"))


def module_name(path: Path, root: Path = PACKAGE) -> str:
    """``lorasb.method.layer`` for lorasb/method/layer.py, ``lorasb.method`` for its ``__init__.py``."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(("lorasb", *(parts[:-1] if parts[-1] == "__init__" else parts)))


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Each module of the package at ``root`` and the package's modules it imports
    (``from a import b`` counts as importing ``a.b`` where that is a module, else ``a``)."""
    files = sorted(root.rglob("*.py"))
    modules = {module_name(path, root) for path in files}
    graph = {}
    for path in files:
        named = set()
        for name in imports(path, root):
            named |= {name} if name in modules else {name.rsplit(".", 1)[0]} & modules
        graph[module_name(path, root)] = named - {module_name(path, root)}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected sets of more than one module (Tarjan's algorithm): each is a cycle."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_no_import_cycles():
    assert import_cycles(import_graph()) == []


def test_the_cycle_check_finds_a_deferred_import_cycle(tmp_path):
    """Two files of one layer importing each other, one of them inside a function, are a cycle."""
    root = tmp_path / "lorasb"
    (root / "method").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "method" / "__init__.py").write_text("")
    (root / "method" / "base.py").write_text("def classes():\n    from lorasb.method.peft import Lora\n    return [Lora]\n")
    (root / "method" / "peft.py").write_text("from lorasb.method.base import classes\nclass Lora: ...\n")
    (root / "method" / "layer.py").write_text("from lorasb.method import base\n")
    assert import_cycles(import_graph(root)) == [["lorasb.method.base", "lorasb.method.peft"]]


def test_every_file_belongs_to_a_known_layer():
    unknown = {str(path.relative_to(PACKAGE)) for path in FILES if layer_of(path) not in ALLOWED.keys() | ENTRY_POINTS}
    assert not unknown, f"files outside the layers {sorted(ALLOWED)} and entry points {sorted(ENTRY_POINTS)}: {unknown}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_the_layers_below(path):
    layer = layer_of(path)
    used = {name.split(".")[1] for name in imports(path) if name.startswith("lorasb.")}
    used.discard(layer)
    if layer in ENTRY_POINTS:
        assert not used & ENTRY_POINTS, f"entry point {layer} imports another entry point: {used & ENTRY_POINTS}"
    else:
        assert used <= ALLOWED[layer], f"{layer} may import {sorted(ALLOWED[layer])}, but imports {sorted(used - ALLOWED[layer])}"
    third_party = {name.split(".")[0] for name in imports(path)}
    banned = third_party & FORBIDDEN_THIRD_PARTY.get(layer, set())
    assert not banned, f"{layer} must not import {sorted(banned)}"


def test_the_checker_sees_a_violation(tmp_path):
    """The import reader resolves relative imports, so a hidden upward import is caught."""
    probe = tmp_path / "lorasb" / "method" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("from ..lightning import module\nfrom . import layer\nimport lorasb.train\n")
    assert imports(probe, root=tmp_path / "lorasb") == {"lorasb.lightning", "lorasb.method", "lorasb.train"}
