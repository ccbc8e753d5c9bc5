"""The package's layers, read from the imports: each layer imports only those below it.

    method   models                 plain PyTorch / Hugging Face loading; nothing of lorasb
      ↑        ↑
      │      data                   data modules, prompts (models: tokenizers, cache)
      │        ↑
    lightning  eval    config       Lightning modules · evaluation sets, generation, grading · Hydra
      ↑        ↑        ↑           (config reads the schedule names of lightning)
    train  evaluate  report         entry points: import any layer, never each other
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lorasb"

ALLOWED = {
    "method": set(),
    "models": set(),
    "data": {"models"},
    "eval": {"data", "models"},
    "lightning": {"method", "data", "models"},
    "config": {"models", "lightning"},
    "__init__": {"method"},
}
ENTRY_POINTS = {"train", "evaluate", "report", "export", "bench"}
# The method is usable from any training loop: no training framework or config system in it.
FORBIDDEN_THIRD_PARTY = {"method": {"lightning", "hydra", "omegaconf", "datasets"}}


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
