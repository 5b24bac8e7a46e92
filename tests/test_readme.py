"""The README's Python examples name what the package has: every import resolves, every call to a
known function or method binds to its signature, and every attribute read from a typed result
(`result.metrics.macro_f1`, `report.answers[0].quote`) is a field of the class the function returns.

The examples stand for users' own files (reviews.csv, notes/), so they are checked, not run."""

import ast
import dataclasses
import inspect
import re
import shlex
import types
import typing
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def _unwrap(t):
    """list[Hit] -> Hit for a subscript, Optional[X] -> X; anything else unchanged."""
    origin = typing.get_origin(t)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(t) if a is not type(None)]
        return args[0] if len(args) == 1 else None
    return t


def _hints(obj) -> dict:
    try:
        return typing.get_type_hints(obj)
    except Exception:  # a forward reference the module does not import at run time
        return {}


class _Checker:
    def __init__(self, namespace: dict):
        self.ns, self.types, self.errors = namespace, {}, []

    def value(self, node):
        """The object ``node`` names, when it is an imported name or an attribute of one."""
        if isinstance(node, ast.Name):
            return self.ns.get(node.id)
        if isinstance(node, ast.Attribute):
            owner = self.value(node.value)
            if owner is not None:
                if not hasattr(owner, node.attr):
                    self.errors.append(f"line {node.lineno}: {ast.unparse(node)}: no such attribute")
                return getattr(owner, node.attr, None)
        return None

    def type_of(self, node):
        """The class of the value ``node`` computes, when the README's names say it; else None."""
        if isinstance(node, ast.Name):
            return self.types.get(node.id)
        if isinstance(node, ast.Attribute):
            owner = self.type_of(node.value)
            if owner is None or not isinstance(owner, type):
                return None
            fields = {f.name for f in dataclasses.fields(owner)} if dataclasses.is_dataclass(owner) else set()
            if node.attr not in fields and not hasattr(owner, node.attr):
                self.errors.append(f"line {node.lineno}: {ast.unparse(node)}: {owner.__name__} has no {node.attr!r}")
                return None
            attr = inspect.getattr_static(owner, node.attr, None)
            if isinstance(attr, property):
                return _unwrap(_hints(attr.fget).get("return"))
            return _unwrap(_hints(owner).get(node.attr))
        if isinstance(node, (ast.Tuple, ast.List)):
            for element in node.elts:
                self.type_of(element)
            return None
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp)):
            saved = dict(self.types)
            for gen in node.generators:  # [... for t in found.topics]: t is a Topic
                args = typing.get_args(self.type_of(gen.iter) or ())
                if isinstance(gen.target, ast.Name):
                    self.types[gen.target.id] = _unwrap(args[0]) if len(args) == 1 else None
            self.type_of(node.elt)
            self.types = saved
            return None
        if isinstance(node, ast.Subscript):
            t = self.type_of(node.value)
            if isinstance(node.slice, ast.Slice):
                return t
            args = typing.get_args(t) if t is not None else ()
            return _unwrap(args[0]) if len(args) == 1 else None
        if isinstance(node, ast.Call):
            return self.call(node)
        return None

    def call(self, node: ast.Call):
        func, bound_self = None, False
        if isinstance(node.func, ast.Attribute) and (owner := self.type_of(node.func.value)) is not None:
            func = getattr(owner, node.func.attr, None)
            if func is None:
                self.errors.append(f"line {node.lineno}: {owner.__name__} has no method {node.func.attr!r}")
                return None
            bound_self = not isinstance(inspect.getattr_static(owner, node.func.attr), (staticmethod, classmethod))
        else:
            func = self.value(node.func)
        for arg in [*node.args, *(k.value for k in node.keywords)]:
            self.type_of(arg)
        if func is None or not callable(func):
            return None
        try:
            sig = inspect.signature(func)
        except (TypeError, ValueError):
            return None
        positional = [None] * (len(node.args) + bound_self)
        keywords = {k.arg: None for k in node.keywords if k.arg is not None}
        try:
            sig.bind(*positional, **keywords)
        except TypeError as e:
            self.errors.append(f"line {node.lineno}: {ast.unparse(node)[:80]}: {e}")
        if isinstance(func, type):
            return func
        returned = _unwrap(_hints(func).get("return"))
        return returned if isinstance(returned, type) or typing.get_origin(returned) is list else None

    def statement(self, stmt) -> None:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            return
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            self.types[stmt.targets[0].id] = self.type_of(stmt.value)
            return
        if isinstance(stmt, ast.Expr):  # "result.predicted, result.confidence, ...": each part checked
            self.type_of(stmt.value)
            return
        for node in ast.walk(stmt):
            if isinstance(node, (ast.Call, ast.Attribute)) and not isinstance(getattr(node, "ctx", None), ast.Store):
                self.type_of(node)
                break  # ast.walk goes on into the parts type_of has already checked
        for child in ast.iter_child_nodes(stmt):
            if isinstance(child, ast.stmt):
                self.statement(child)


@pytest.mark.parametrize("number", range(len(_blocks())))
def test_readme_python_example_matches_the_package(number):
    code = _blocks()[number]
    tree = ast.parse(code)  # a syntax error fails here
    namespace: dict = {}
    for stmt in tree.body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            exec(compile(ast.Module([stmt], []), "<README.md>", "exec"), namespace)  # an import that fails fails here
    checker = _Checker(namespace)
    for stmt in tree.body:
        checker.statement(stmt)
    assert not checker.errors, "\n".join(checker.errors)


def test_the_checker_catches_drift():
    """A renamed keyword, a missing field and a missing import each fail the check."""
    namespace: dict = {}
    exec("from llmlab.apps import classify, inspect", namespace)
    checker = _Checker(namespace)
    for stmt in ast.parse("result = classify(texts, 'hybrid', training_texts=t)\n"
                          "result.metrics.macro_f2\n"
                          "report = inspect(p, summary=True)\n"
                          "report.answers[0].citation\n").body:
        checker.statement(stmt)
    assert len(checker.errors) == 3, checker.errors
    assert "training_texts" in checker.errors[0] and "macro_f2" in checker.errors[1]
    assert "citation" in checker.errors[2]
    with pytest.raises(ImportError):
        exec("from llmlab.apps import summarise", {})


def _command_lines() -> list[str]:
    """Each `$ llmlab ...` line of the README's shell examples, without its comment (continuations joined)."""
    text = README.read_text(encoding="utf-8").replace("\\\n", " ")
    lines = []
    for line in re.findall(r"^\$ (.*)$", text, flags=re.M):
        command = line.split("|")[-1] if "|" in line.split("#")[0] else line
        words = shlex.split(command, comments=True)
        if ">" in words:  # "> vectors.jsonl": the shell's, not the command's
            words = words[:words.index(">")] + words[words.index(">") + 2:]
        if words and words[0] == "llmlab":
            lines.append(words[1:])
    return lines


def test_readme_commands_parse():
    """Every llmlab command line the README shows is accepted by the CLI's parser as written."""
    from llmlab.cli import build_parser

    lines = _command_lines()
    assert len(lines) > 40
    parser = build_parser()
    for words in lines:
        try:
            parser.parse_args(words)
        except SystemExit:
            pytest.fail(f"the README's `llmlab {shlex.join(words)}` does not parse")
