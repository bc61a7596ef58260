"""Safe YAML loading that remembers where every key and value was written.

Spec errors must say ``file:line:column``. PyYAML's composer already records a start mark on every
node, so we compose the node graph with a :class:`yaml.SafeLoader` subclass (no Python tags, ever)
and build plain Python data ourselves, recording the marks per *key path*
(``("audio", "tracks", 0, "loudness", "target_lufs")``) on the way. Duplicate keys, which PyYAML
silently accepts (last one wins), are reported instead.

The loader also speaks "YAML as authors mean it" rather than YAML 1.1:

* only ``true``/``false`` are booleans (``severity: off`` stays the string ``"off"``; ``yes``/``no``
  stay strings), and
* there are no base-60 numbers: ``10:00:00:00`` is a timecode string, ``4:2:2`` and ``16:9`` are
  strings, not the integers 2160000, 14522 and 969.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = ["Mark", "MarkedDoc", "YamlProblem", "load_marked", "Path_", "MAX_NODES", "MAX_DEPTH"]

Path_ = tuple[str | int, ...]

#: A guard against alias bombs ("billion laughs"): no spec comes near this many nodes.
MAX_NODES = 200_000
#: Deepest nesting of mappings and lists a spec may use (the real ones use 6). Checked while composing,
#: before Python's recursion limit is anywhere near.
MAX_DEPTH = 64


@dataclass(frozen=True)
class Mark:
    """A 1-based position in a file."""

    line: int
    column: int


@dataclass(frozen=True)
class YamlProblem:
    """A problem found while reading YAML (syntax error, duplicate key ...)."""

    mark: Mark
    message: str
    hint: str | None = None


@dataclass
class MarkedDoc:
    """Plain data plus the position of every key (``key_marks``) and value (``value_marks``)."""

    data: Any
    key_marks: dict[Path_, Mark] = field(default_factory=dict)
    value_marks: dict[Path_, Mark] = field(default_factory=dict)

    def mark_for(self, path: Path_, *, prefer_key: bool = False) -> Mark | None:
        """The mark of ``path`` (its value, or its key), else of its nearest written ancestor."""
        for n in range(len(path), -1, -1):
            sub = tuple(path[:n])
            first, second = (self.key_marks, self.value_marks) if prefer_key or n < len(path) else (
                self.value_marks, self.key_marks)
            if sub in first:
                return first[sub]
            if sub in second:
                return second[sub]
        return None

    def rename(self, parent: Path_, old: str, new: str) -> None:
        """Rename key ``old`` under ``parent`` to ``new``, moving the marks of the whole subtree.

        Used by schema upgrade functions so that errors in upgraded files still point at the
        line the author wrote.
        """
        node = self.get(parent)
        if not isinstance(node, dict) or old not in node:
            return
        node[new] = node.pop(old)
        n = len(parent)
        for marks in (self.key_marks, self.value_marks):
            for path in [p for p in marks if p[:n] == parent and len(p) > n and p[n] == old]:
                marks[parent + (new,) + path[n + 1:]] = marks.pop(path)

    def get(self, path: Path_) -> Any:
        """The value at ``path`` or ``None``."""
        node = self.data
        for part in path:
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                node = node[part]
            else:
                return None
        return node


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader with YAML-1.2-style booleans, no sexagesimal numbers, and a nesting limit."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooDeep(_mark_of(self.peek_event().start_mark))
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_SpecLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_BOOL, _INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_SpecLoader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_SpecLoader.add_implicit_resolver(
    _INT, re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0o?[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"))
_SpecLoader.add_implicit_resolver(
    _FLOAT, re.compile(r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?"
                       r"|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))


def _mark_of(mark: Any) -> Mark:
    return Mark(mark.line + 1, mark.column + 1)


def _mark(node: yaml.Node) -> Mark:
    return _mark_of(node.start_mark)


def _syntax_problem(exc: yaml.MarkedYAMLError) -> YamlProblem:
    """A syntax error at the place parsing failed, naming where the unclosed construct opened too.

    PyYAML notices an unclosed ``[`` or ``{`` (or a quote) only where the next token cannot belong to it, often
    lines later; its ``context_mark`` is where the construct began, ``problem_mark`` where parsing failed.
    """
    problem, context = exc.problem_mark, exc.context_mark
    mark = problem or context
    where = Mark(mark.line + 1, mark.column + 1) if mark else Mark(1, 1)
    what = str(exc.problem or exc.context or "invalid YAML")
    if context is not None and exc.context and (problem is None or context.line != problem.line
                                                or context.column != problem.column):
        construct = re.sub(r"^while (?:parsing|scanning) (?:an? )?", "", str(exc.context))
        opened = f"line {context.line + 1}, column {context.column + 1}"
        failed = f"line {where.line}, column {where.column}"
        if construct.startswith(("flow ", "quoted ")):  # brackets and quotes must be closed
            what += f"; the {construct} opened at {opened} is not closed (parsing failed at {failed})"
        else:
            what += f"; in the {construct} that starts at {opened} (parsing failed at {failed})"
    elif exc.context:
        what = f"{exc.context} {what}"
    return YamlProblem(where, f"YAML syntax error: {what}",
                       "check indentation (spaces, not tabs), colons after keys and quotes around "
                       "values that contain ': ' or start with '{', '[', '*', '&' or '#'")


def load_marked(text: str) -> tuple[MarkedDoc | None, list[YamlProblem]]:
    """Parse ``text`` safely; return the marked document (``None`` on a syntax error) and problems."""
    problems: list[YamlProblem] = []
    loader = _SpecLoader(text)
    try:
        root = loader.get_single_node()
    except _TooDeep as deep:
        loader.dispose()
        return None, [YamlProblem(deep.mark, f"nested more than {MAX_DEPTH} levels deep",
                                  "a spec nests a few levels (audio > tracks > loudness); is this the right file?")]
    except yaml.MarkedYAMLError as exc:
        return None, [_syntax_problem(exc)]
    except yaml.YAMLError as exc:  # e.g. a document stream with several documents
        return None, [YamlProblem(Mark(1, 1), f"YAML error: {exc}", "a spec is one YAML document")]
    doc = MarkedDoc(data=None)
    if root is None:
        doc.data = {}
        return doc, problems
    count = 0

    def build(node: yaml.Node, path: Path_) -> Any:
        nonlocal count
        count += 1
        if count > MAX_NODES:
            raise _TooBig(_mark(node))
        if isinstance(node, yaml.MappingNode):
            loader.flatten_mapping(node)  # YAML merge keys (<<: *anchor)
            out: dict[Any, Any] = {}
            first_line: dict[Any, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    problems.append(YamlProblem(_mark(key_node), "a key must be a plain word, not a list or mapping"))
                    continue
                key = loader.construct_object(key_node)
                if not isinstance(key, str):
                    key = key_node.value  # keep what the author wrote: "25", "true"
                sub = path + (key,)
                if key in out:
                    problems.append(YamlProblem(
                        _mark(key_node), f"duplicate key '{key}'",
                        f"it is already set on line {first_line[key]}; keep one of them"))
                else:
                    first_line[key] = _mark(key_node).line
                doc.key_marks[sub] = _mark(key_node)
                doc.value_marks[sub] = _mark(value_node)
                out[key] = build(value_node, sub)
            return out
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                doc.value_marks[path + (index,)] = _mark(item)
                doc.key_marks.setdefault(path + (index,), _mark(item))
                items.append(build(item, path + (index,)))
            return items
        try:
            return loader.construct_object(node)
        except yaml.constructor.ConstructorError as exc:
            problems.append(YamlProblem(_mark(node), f"cannot read value: {exc.problem}",
                                        "quote the value if it is meant as text"))
            return node.value

    try:
        doc.value_marks[()] = _mark(root)
        doc.data = build(root, ())
    except _TooBig as big:
        return None, [YamlProblem(big.mark, f"document expands to more than {MAX_NODES} keys and values (aliases "
                                  "counted at each use)", "a spec has a few hundred; remove repeated YAML aliases, or "
                                  "check that this is the right file")]
    finally:
        loader.dispose()
    return doc, problems


class _TooBig(Exception):
    def __init__(self, mark: Mark) -> None:
        super().__init__()
        self.mark = mark


class _TooDeep(Exception):
    def __init__(self, mark: Mark) -> None:
        super().__init__()
        self.mark = mark
