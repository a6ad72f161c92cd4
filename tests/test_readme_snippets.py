"""The README's "Three ways in" snippets stay valid: they parse, every import resolves and
every attribute they call on skcream objects exists (running them trains networks: that
is done by hand, see the issue reports; the behaviour they show is tested elsewhere)."""

import ast
import importlib
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks():
    text = README.read_text()
    section = text[text.index("## Three ways in"):text.index("## Faithful and exact")]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_there_are_snippets():
    assert len(_blocks()) >= 4


@pytest.mark.parametrize("index", range(8))
def test_snippet_parses_and_its_imports_resolve(index):
    blocks = _blocks()
    if index >= len(blocks):
        pytest.skip("fewer snippets")
    tree = ast.parse(blocks[index])
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{node.module}.{alias.name}"
                names[alias.asname or alias.name] = getattr(module, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)
    # Class.method(...) calls on imported skcream classes name existing methods
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in names and isinstance(names[node.value.id], type)):
            assert hasattr(names[node.value.id], node.attr), f"{node.value.id}.{node.attr}"
