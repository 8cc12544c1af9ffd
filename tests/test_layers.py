"""The spine's rules, checked on the source: capabilities are asked of a model, not read off its name.

Outside ``lmlab/models`` (where each family's own file and the registry live) no code may name a
model family: no string that is a family's name, no import of a family's module or of a function
named after a family. Help texts and docstrings may mention them. The layer order itself is
checked by ``lint-imports`` (pyproject.toml), which `make test` runs.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import lmlab

FAMILY_NAMES = {"gpt", "bert", "rnn", "lstm", "gru", "mlp", "ngram", "word2vec"}
PACKAGE = Path(lmlab.__file__).parent
HELP_KEYWORDS = {"help", "description", "help_text"}  # argparse and pydantic help texts


def _docstrings(tree: ast.AST) -> set[int]:
    nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef))]
    ids = set()
    for node in nodes:
        body = getattr(node, "body", [])
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            ids.add(id(body[0].value))
    return ids


def _help_texts(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg in HELP_KEYWORDS:
            ids.update(id(n) for n in ast.walk(node.value))
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) in {"add_parser", "add_argument"}:
            ids.update(id(n) for arg in node.args[1:] for n in ast.walk(arg))  # add(sub, name, handler, help)
    return ids


def _words(name: str) -> set[str]:
    return {word.lower() for word in re.split(r"[._]", name)}


def family_names_in(path: Path) -> list[str]:
    """Every place in `path` that names a model family in code: "line: what"."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    allowed = _docstrings(tree) | _help_texts(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in allowed:
            if node.value.lower() in FAMILY_NAMES:
                found.append(f"{node.lineno}: the string {node.value!r}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            for name in [node.module, *(alias.name for alias in node.names)]:
                if _words(name) & FAMILY_NAMES:
                    found.append(f"{node.lineno}: import of {name}")
        elif isinstance(node, ast.Import):
            found += [f"{node.lineno}: import of {a.name}" for a in node.names if _words(a.name) & FAMILY_NAMES]
    return sorted(found, key=lambda hit: int(hit.split(":")[0]))


def test_no_family_name_in_code_outside_the_models_package():
    offenders = {
        str(path.relative_to(PACKAGE)): hits
        for path in sorted(PACKAGE.rglob("*.py"))
        if "models" not in path.relative_to(PACKAGE).parts and (hits := family_names_in(path))
    }
    assert offenders == {}


def test_the_check_finds_what_it_is_for(tmp_path):
    """The rule itself can fail: a family-name comparison, a family import and a dict key are found;
    a docstring, a help text and an error message are not."""
    sample = tmp_path / "sample.py"
    sample.write_text('''"""Works with gpt and bert."""
from lmlab.models.gpt import GPT
from lmlab.models.hf_bert import load_bert_directory

def f(model, parser):
    """For an lstm."""
    parser.add_argument("--x", help="an ngram run")
    if model.family == "gpt":
        return {"bert": 1}
    raise ValueError(f"a {model.family} model is not an rnn")
''')
    found = family_names_in(sample)
    assert found == ["2: import of lmlab.models.gpt", "2: import of GPT", "3: import of lmlab.models.hf_bert",
                     "3: import of load_bert_directory", "8: the string 'gpt'", "9: the string 'bert'"]
