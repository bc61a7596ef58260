"""Load, resolve (``extends``), upgrade, validate, lint and render delivery specs.

A spec is a built-in name (``netflix``, ``ebu-r128``; the files next to this module) or a path to
a YAML file. Loading reads YAML safely while recording the line and column of every key, applies
schema upgrades per file, resolves ``extends`` (deep merge: mappings merge key by key, lists and
scalars replace; ``name``, ``description``, ``provenance``, ``sources``, ``abstract`` and
``extends`` are never inherited), validates the merged document with the strict model and turns
every problem into a :class:`LintIssue` ``file:line:column: message (hint)``.

``load_spec`` raises ONE :class:`~specs.errors.SpecError` listing every problem; ``lint_paths``
returns the issues and never raises for bad content.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import re
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from specs._yaml import Mark, MarkedDoc, load_marked
from specs.errors import BadInputError, SpecError
from specs.model import (
    KNOWN_CHECKS,
    SCHEMA_VERSION,
    Spec,
    deep_merge,
    did_you_mean,
    render_deliverable_name,
)

__all__ = [
    "LintIssue",
    "lint_files",
    "SPECS_DIR",
    "SCHEMA_FILE",
    "load_spec",
    "list_specs",
    "lint_paths",
    "spec_json_schema",
    "render_resolved_yaml",
    "explain",
    "render_deliverable_name",
    "builtin_names",
    "builtin_base_names",
    "spec_path",
    "upgrade_function_for",
]

SPECS_DIR = Path(__file__).resolve().parent
#: The JSON Schema committed next to the built-in specs (kept in sync by a test).
SCHEMA_FILE = SPECS_DIR / "schema" / f"deliver-spec-{SCHEMA_VERSION}.json"
#: Largest spec file read (the built-in ones are under 10 kB); a bigger file is refused before it is parsed.
MAX_SPEC_BYTES = 1_000_000
SCHEMA_COMMENT = "# yaml-language-server: $schema="

#: Keys that belong to one file and are never inherited through ``extends``.
PER_FILE_KEYS = ("schema", "name", "description", "provenance", "sources", "abstract", "extends")


@dataclass(frozen=True)
class LintIssue:
    """One problem in a spec file, 1-based line and column."""

    path: str
    line: int
    column: int
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.message}" + (f" ({self.hint})" if self.hint else "")


# ---------------------------------------------------------------------------------------------
# Built-ins
# ---------------------------------------------------------------------------------------------


def builtin_names() -> list[str]:
    """Names of the built-in specs that can be used for QC and delivery (bases excluded)."""
    return sorted(p.stem for p in SPECS_DIR.glob("*.yaml"))


def builtin_base_names() -> list[str]:
    """Names of the built-in bases (``base/hd-prores`` ...), usable only in ``extends``."""
    return sorted(f"base/{p.stem}" for p in (SPECS_DIR / "base").glob("*.yaml"))


def _builtin_path(name: str) -> Path | None:
    if name in builtin_names() or name in builtin_base_names():
        return SPECS_DIR / f"{name}.yaml"
    return None


def spec_path(name_or_path: str | Path) -> Path:
    """The file of a built-in name or a path.

    Raises:
        SpecError: neither a built-in name nor an existing file.
    """
    if isinstance(name_or_path, Path) or str(name_or_path).endswith((".yaml", ".yml")) or Path(
            str(name_or_path)).is_file():
        path = Path(name_or_path)
        if not path.is_file():
            raise SpecError(f"spec file {path} not found; give a path to a .yaml file or a built-in name "
                            f"({', '.join(builtin_names())})")
        return path
    name = str(name_or_path)
    found = _builtin_path(name)
    if found is None:
        hint = did_you_mean(name, builtin_names() + builtin_base_names())
        raise SpecError(f"unknown spec '{name}'; built-in specs are {', '.join(builtin_names())}"
                        + (f" ({hint})" if hint else "") + "; or give a path to a .yaml file")
    return found


def _display(path: Path) -> str:
    resolved = path.resolve()
    try:
        return "specs/" + resolved.relative_to(SPECS_DIR).as_posix()
    except ValueError:
        pass
    try:
        return resolved.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------------------------
# Schema upgrades (OTIO-style: one function per version step)
# ---------------------------------------------------------------------------------------------

_UPGRADES: dict[int, Callable[[MarkedDoc], None]] = {}


def upgrade_function_for(version: int) -> Callable[[Callable[[MarkedDoc], None]], Callable[[MarkedDoc], None]]:
    """Register a function that upgrades a document of schema ``version`` to ``version + 1`` in place."""

    def register(func: Callable[[MarkedDoc], None]) -> Callable[[MarkedDoc], None]:
        _UPGRADES[version] = func
        return func

    return register


@upgrade_function_for(0)
def _upgrade_0_to_1(doc: MarkedDoc) -> None:
    """Schema 0 (the issue-2 draft): singular ``picture.frame_rate``; loudness keys without units
    (``target``, ``true_peak``, ``tolerance``); ``timing.start_timecode``."""
    picture = doc.get(("picture",))
    if isinstance(picture, dict) and "frame_rate" in picture:
        doc.rename(("picture",), "frame_rate", "frame_rates")
        if not isinstance(picture["frame_rates"], list):
            picture["frame_rates"] = [picture["frame_rates"]]
    doc.rename(("timing",), "start_timecode", "ffoa_timecode")
    tracks = doc.get(("audio", "tracks"))
    for index, _track in enumerate(tracks if isinstance(tracks, list) else []):
        base = ("audio", "tracks", index, "loudness")
        for old, new in (("target", "target_lufs"), ("true_peak", "max_true_peak_dbtp"),
                         ("tolerance", "tolerance_lu")):
            doc.rename(base, old, new)


# ---------------------------------------------------------------------------------------------
# Resolution
# ---------------------------------------------------------------------------------------------


@dataclass
class _Located:
    display: str
    key: Mark | None
    value: Mark | None


@dataclass
class _Resolved:
    data: dict[str, Any]
    origin: dict[tuple[Any, ...], _Located]
    own: dict[str, Any]
    display: str
    incomplete: bool = False  # an extends target was missing or cyclic: required keys may be absent


class _Resolver:
    """Parses and resolves files, collecting issues; caches each file once per run."""

    def __init__(self) -> None:
        self.issues: list[LintIssue] = []
        self._cache: dict[Path, _Resolved | None] = {}

    @property
    def files(self) -> list[Path]:
        """Every spec file read so far (the spec and its ``extends`` chain)."""
        return list(self._cache)

    def issue(self, display: str, mark: Mark | None, message: str, hint: str | None = None) -> None:
        mark = mark or Mark(1, 1)
        self.issues.append(LintIssue(display, mark.line, mark.column, message, hint))

    def parse(self, path: Path) -> tuple[MarkedDoc | None, str]:
        display = _display(path)
        try:
            size = path.stat().st_size
            if size > MAX_SPEC_BYTES:  # refused before reading: a spec is a few kB
                self.issue(display, None, f"spec file is {size / 1e6:.1f} MB; a spec may be at most "
                           f"{MAX_SPEC_BYTES // 1_000_000} MB", "is this the right file? Specs are a few kB of YAML")
                return None, display
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            self.issue(display, None, "file is not UTF-8 text", "save the spec as UTF-8")
            return None, display
        except OSError as exc:
            self.issue(display, None, f"cannot read spec file: {exc.strerror or exc}",
                       "check the path; built-in names are " + ", ".join(builtin_names()))
            return None, display
        doc, problems = load_marked(text)
        for problem in problems:
            self.issue(display, problem.mark, problem.message, problem.hint)
        if doc is None:
            return None, display
        if not isinstance(doc.data, dict):
            self.issue(display, doc.value_marks.get(()), "a spec must be a mapping of keys (name:, picture:, ...)",
                       "start with `schema: 1` and `name: my-spec`")
            return None, display
        version = doc.data.get("schema", SCHEMA_VERSION)
        where = doc.value_marks.get(("schema",))
        if not isinstance(version, int) or isinstance(version, bool):
            self.issue(display, where, f"schema must be a whole number, got {version!r}",
                       f"write schema: {SCHEMA_VERSION}")
            return None, display
        if version > SCHEMA_VERSION:
            self.issue(display, where, f"schema {version} is newer than this deliver understands ({SCHEMA_VERSION})",
                       "upgrade deliver")
            return None, display
        while version < SCHEMA_VERSION:
            upgrade = _UPGRADES.get(version)
            if upgrade is None:
                self.issue(display, where, f"schema {version} cannot be upgraded",
                           f"rewrite for schema {SCHEMA_VERSION}")
                return None, display
            upgrade(doc)
            version += 1
        if "schema" in doc.data:
            doc.data["schema"] = SCHEMA_VERSION
        return doc, display

    def resolve(self, path: Path, stack: tuple[Path, ...] = ()) -> _Resolved | None:
        path = path.resolve()
        if path in self._cache:
            return self._cache[path]
        doc, display = self.parse(path)
        if doc is None:
            self._cache[path] = None
            return None
        own: dict[str, Any] = doc.data
        merged: dict[str, Any] = {}
        origin: dict[tuple[Any, ...], _Located] = {}
        incomplete = False
        for ref, ref_path in self._parents(doc, display):
            target = self._locate(ref, path)
            mark = doc.value_marks.get(ref_path)
            if target is None:
                hint = did_you_mean(ref, builtin_names() + builtin_base_names())
                self.issue(display, mark, f"extends: '{ref}' not found",
                           hint or ("built-in names: " + ", ".join(builtin_names() + builtin_base_names())
                                    + "; a file path must end in .yaml and is relative to this file"))
                incomplete = True
                continue
            if target.resolve() in stack + (path,):
                chain = " -> ".join(_display(p) for p in stack + (path, target.resolve()))
                self.issue(display, mark, f"extends cycle: {chain}", "a spec cannot extend itself, directly or "
                           "through its bases; remove one of the extends entries")
                incomplete = True
                continue
            parent = self.resolve(target, stack + (path,))
            if parent is None:
                incomplete = True
                continue
            incomplete = incomplete or parent.incomplete
            inherited = {k: v for k, v in parent.data.items() if k not in PER_FILE_KEYS}
            merged = deep_merge(merged, inherited)
            origin.update({p: loc for p, loc in parent.origin.items() if not p or p[0] not in PER_FILE_KEYS})
        merged = deep_merge(merged, own)
        for key_path, mark in doc.value_marks.items():
            origin[key_path] = _Located(display, doc.key_marks.get(key_path), mark)
        resolved = _Resolved(merged, origin, own, display, incomplete)
        self._cache[path] = resolved
        return resolved

    def _parents(self, doc: MarkedDoc, display: str) -> list[tuple[str, tuple[Any, ...]]]:
        ext = doc.data.get("extends")
        if ext is None:
            return []
        items = ext if isinstance(ext, list) else [ext]
        out = []
        for index, item in enumerate(items):
            path = ("extends", index) if isinstance(ext, list) else ("extends",)
            if not isinstance(item, str) or not item.strip():
                self.issue(display, doc.value_marks.get(path), f"extends entry {item!r} is not a spec name",
                           "write extends: base/hd-prores or extends: [ebu-r128, ./my-base.yaml]")
                continue
            out.append((item.strip(), path))
        return out

    @staticmethod
    def _locate(ref: str, relative_to: Path) -> Path | None:
        if ref.endswith((".yaml", ".yml")):
            candidate = (relative_to.parent / ref).resolve()
            return candidate if candidate.is_file() else None
        return _builtin_path(ref)


def _lookup(origin: dict[tuple[Any, ...], _Located], path: tuple[Any, ...], value: Any,
            prefer_key: bool, fallback: str) -> tuple[str, Mark]:
    for n in range(len(path), -1, -1):
        located = origin.get(tuple(path[:n]))
        if located is None:
            continue
        exact = n == len(path)
        use_key = prefer_key or not exact or isinstance(value, (dict, list))
        mark = (located.key or located.value) if use_key else (located.value or located.key)
        return located.display, mark or Mark(1, 1)
    return fallback, Mark(1, 1)


def _data_path(data: Any, loc: Iterable[Any]) -> tuple[tuple[Any, ...], Any]:
    """The part of a pydantic ``loc`` that exists in ``data`` (drops union/validator tags)."""
    path: list[Any] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
    return tuple(path), node


def _human(path: tuple[Any, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "the top level"


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is typing.Annotated:
            tp = get_args(tp)[0]
        elif origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
            members = [a for a in get_args(tp) if a is not type(None)]
            preferred = [a for a in members if (inspect.isclass(a) and issubclass(a, BaseModel))
                         or get_origin(a) in (list, dict)]
            tp = (preferred or members)[0]
        else:
            return tp


def _model_at(path: tuple[Any, ...]) -> type[BaseModel] | None:
    tp: Any = Spec
    for part in path:
        tp = _unwrap(tp)
        if inspect.isclass(tp) and issubclass(tp, BaseModel):
            field = next((f for n, f in tp.model_fields.items() if part in (n, f.alias)), None)
            if field is None:
                return None
            tp = field.annotation
        elif get_origin(tp) is list:
            tp = get_args(tp)[0]
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        else:
            return None
    tp = _unwrap(tp)
    return tp if inspect.isclass(tp) and issubclass(tp, BaseModel) else None


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


def _describe(err: Mapping[str, Any], path: tuple[Any, ...], data: dict[str, Any]) -> tuple[str, str | None, bool]:
    """(message, hint, prefer_key_mark) for one pydantic error."""
    kind = err["type"]
    loc = err["loc"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    key = next((str(p) for p in reversed(path) if isinstance(p, str)), "value")
    where = _human(path)
    if kind == "extra_forbidden":
        name = str(loc[-1])
        parent = path[:-1]
        model = _model_at(parent)
        allowed = _keys_of(model) if model else []
        hint = did_you_mean(name, allowed) if allowed else None
        return (f"unknown key '{name}' in {_human(parent)}",
                hint or (f"allowed keys: {', '.join(allowed)}" if allowed else None), True)
    if kind == "missing":
        name = str(loc[-1])
        return f"missing required key '{name}' in {where}", f"add `{name}:` to {where}", True
    if kind == "deliver":
        return err["msg"], ctx.get("hint"), False
    if kind in ("literal_error", "enum"):
        expected = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        if key == "severity":
            names = data.get("severity_names")
            extra = [str(v) for v in names.values()] if isinstance(names, dict) else []
            vocab = expected + extra
            hint = did_you_mean(str(value), vocab)
            return (f"unknown severity '{value}'",
                    (hint + "; " if hint else "") + f"use one of {', '.join(vocab)}", False)
        hint = did_you_mean(str(value), expected) if expected else None
        return (f"'{value}' is not allowed for {key}",
                (hint + "; " if hint else "") + f"use one of {', '.join(expected)}", False)
    if kind in ("int_parsing", "float_parsing", "int_type", "float_type", "decimal_parsing"):
        return f"{key} must be a number, got {value!r}", "write a plain number without quotes or units", False
    if kind == "int_from_float":
        return (f"{key} must be a whole number, got {value!r}",
                f"write {round(value) if isinstance(value, float) else 1}", False)
    if kind in ("string_type",):
        return f"{key} must be text, got {value!r}", "quote the value", False
    if kind in ("bool_type", "bool_parsing"):
        return f"{key} must be true or false, got {value!r}", "write true or false", False
    if kind == "list_type":
        return f"{key} must be a list, got {value!r}", "write [a, b] or one `- item` per line", False
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return (f"{key} must be a mapping of keys, got {value!r}",
                f"write the keys of {key} indented on the lines below `{key}:`", False)
    if kind.startswith("date"):
        return f"{key} must be a date, got {value!r}", "write YYYY-MM-DD, e.g. 2024-11-19", False
    if kind == "string_pattern_mismatch":
        return (f"'{value}' is not a valid {key}",
                "use lowercase letters, digits and '-' (ids may also use '.' and '_')", False)
    if kind == "too_short":
        return f"{key} needs at least one entry", f"add an entry to {key}", True
    return f"{where}: {err['msg']}", None, False


def _validate(resolved: _Resolved, *, allow_missing: bool) -> tuple[Spec | None, list[LintIssue]]:
    issues: list[LintIssue] = []
    data = resolved.data
    try:
        return Spec.model_validate(data), issues
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    for err in errors:
        ctx = err.get("ctx") or {}
        base, node = _data_path(data, err["loc"])
        if err["type"] == "missing" and allow_missing:
            continue
        if err["type"] == "deliver" and "problems" in ctx:
            for sub, message, hint in ctx["problems"]:
                path, value = _data_path(data, base + tuple(sub))
                wanted = base + tuple(sub)
                key_like = len(path) < len(wanted) or (wanted and isinstance(wanted[-1], str)
                                                       and isinstance(value, (dict, list)))
                display, mark = _lookup(resolved.origin, wanted, value, bool(key_like), resolved.display)
                issues.append(LintIssue(display, mark.line, mark.column, message, hint))
            continue
        if "field" in ctx:
            base, node = _data_path(data, base + tuple(ctx["field"]))
        message, hint, prefer_key = _describe(err, base, data)
        display, mark = _lookup(resolved.origin, base, node, prefer_key, resolved.display)
        issues.append(LintIssue(display, mark.line, mark.column, message, hint))
    return None, issues


def _dedupe(issues: Iterable[LintIssue]) -> list[LintIssue]:
    seen: set[LintIssue] = set()
    out = []
    for issue in issues:
        if issue not in seen:
            seen.add(issue)
            out.append(issue)
    return sorted(out, key=lambda i: (i.path, i.line, i.column))


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def load_spec(name_or_path: str | Path) -> Spec:
    """Load a built-in spec by name (``netflix``) or a spec file by path, with ``extends`` resolved.

    Raises:
        SpecError: with every problem as ``file:line:column: message (hint)``; ``.issues`` holds
            the :class:`LintIssue` list.
    """
    path = spec_path(name_or_path)
    cached = _LOADED.get(path)
    if cached is not None and cached[0] == _stamps(cached[0]):
        return cached[1]
    resolver = _Resolver()
    resolved = resolver.resolve(path)
    issues = list(resolver.issues)
    spec = None
    if resolved is not None:
        if resolved.own.get("abstract") is True:
            display, mark = _lookup(resolved.origin, ("abstract",), True, True, resolved.display)
            issues.append(LintIssue(display, mark.line, mark.column,
                                    f"{resolved.display} is a base (abstract: true) and cannot be used on its own",
                                    "write a spec that extends it, or use one of " + ", ".join(builtin_names())))
        else:
            spec, more = _validate(resolved, allow_missing=resolved.incomplete)
            issues += more
    issues = _dedupe(issues)
    if issues or spec is None:
        raise _spec_error(issues or [LintIssue(_display(path), 1, 1, "spec could not be loaded")])
    _LOADED[path] = (_stamps(tuple((f, 0, 0) for f in resolver.files)), spec)
    return spec


#: Specs already loaded in this process, with the identity (path, mtime, size) of every file they were
#: resolved from (``extends`` included): a run's pre-flight check and its flow share one load, and an
#: edited file is read again.
_LOADED: dict[Path, tuple[tuple[tuple[Path, int, int], ...], Spec]] = {}


def _stamps(files: tuple[tuple[Path, int, int], ...]) -> tuple[tuple[Path, int, int], ...]:
    out = []
    for f, _mtime, _size in files:
        try:
            st = f.stat()
        except OSError:
            return ()
        out.append((f, st.st_mtime_ns, st.st_size))
    return tuple(out)


def _spec_error(issues: list[LintIssue]) -> SpecError:
    if len(issues) == 1:
        message = str(issues[0])
    else:
        message = f"{len(issues)} problems in spec: " + "; ".join(str(i) for i in issues)
    error = SpecError(message)
    error.issues = issues
    return error


def lint_files(paths: Iterable[str | Path]) -> list[Path]:
    """The spec files named by ``paths``: files, built-in names, and every ``*.yaml`` in folders.

    Raises:
        BadInputError: a path that does not exist (and is no built-in name), or a folder without specs:
            there is nothing to lint, which must not read as "ok".
    """
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(path.rglob("*.yaml"))
            if not found:
                raise BadInputError(f"{raw}: no spec files (*.yaml) in this folder; give a spec file or a folder "
                                    "of specs")
            files += found
        elif path.is_file():
            files.append(path)
        elif (builtin := _builtin_path(str(raw))) is not None and not str(raw).endswith((".yaml", ".yml")):
            files.append(builtin)
        else:
            raise BadInputError(f"{raw}: no such spec file or folder; give a spec file, a folder of specs or a "
                                "built-in name (" + ", ".join(builtin_names()) + ")")
    return files


def lint_paths(paths: Iterable[str | Path]) -> list[LintIssue]:
    """Every problem in the given spec files (folders: every ``*.yaml`` inside). Never raises for
    bad content; a base (``abstract: true``) may leave out required keys."""
    issues: list[LintIssue] = []
    for path in lint_files(paths):
        resolver = _Resolver()
        resolved = resolver.resolve(path)
        issues += resolver.issues
        if resolved is not None:
            _, more = _validate(resolved, allow_missing=resolved.own.get("abstract") is True
                                 or resolved.incomplete)
            issues += more
    return _dedupe(issues)


def list_specs() -> list[tuple[str, str]]:
    """(name, description) of every built-in spec."""
    out = []
    for name in builtin_names():
        try:
            data = yaml.safe_load((SPECS_DIR / f"{name}.yaml").read_text(encoding="utf-8")) or {}
            description = str(data.get("description", "")).strip().splitlines()[0]
        except (yaml.YAMLError, OSError, IndexError, AttributeError):
            description = "(unreadable: run deliver spec lint)"
        out.append((name, description))
    return out


def _walk(node: Any, visit: Callable[[dict[str, Any]], None]) -> None:
    if isinstance(node, dict):
        visit(node)
        for value in node.values():
            _walk(value, visit)
    elif isinstance(node, list):
        for value in node:
            _walk(value, visit)


#: Models whose instances merge key by key through ``extends``: a file may give only some keys.
_MERGED_MODELS = ("PictureSpec", "Colour", "AudioSpec", "TimingSpec", "CheckSpec", "Override")


def spec_json_schema(*, resolved: bool = False) -> dict[str, Any]:
    """The JSON Schema of spec files (draft 2020-12).

    The default (authoring) schema lets a file leave out keys that ``extends`` may supply; with
    ``resolved=True`` every key a complete spec needs is required.
    """
    return copy.deepcopy(_json_schema(resolved))


@functools.lru_cache(maxsize=2)
def _json_schema(resolved: bool) -> dict[str, Any]:
    schema = Spec.model_json_schema(by_alias=True, mode="validation")
    severity_names = ["error", "warning", "info", "off"]
    check_ref = {"$ref": "#/$defs/CheckSpec"}

    def visit(node: dict[str, Any]) -> None:
        if node.get("additionalProperties") == check_ref:
            node["additionalProperties"] = {"anyOf": [check_ref, {"type": "string",
                                                                  "description": "shorthand for {severity: ...}"}]}
            node["propertyNames"] = {"enum": sorted(KNOWN_CHECKS)}
        # Optional lists accept a single item too (`frame_rates: 25`, `hdr: hlg`).
        alternatives = node.get("anyOf")
        if isinstance(alternatives, list) and {"type": "null"} in alternatives:
            arrays = [a for a in alternatives if isinstance(a, dict) and a.get("type") == "array" and "items" in a]
            if len(arrays) == 1 and arrays[0]["items"] not in alternatives:
                alternatives.insert(alternatives.index(arrays[0]) + 1, arrays[0]["items"])

    _walk(schema, visit)
    check = schema["$defs"]["CheckSpec"]
    check["properties"]["severity"] = {
        "anyOf": [{"enum": severity_names}, {"type": "string", "description": "a name from severity_names"}],
        "description": "error | warning | info | off, or the spec's own word (severity_names)"}
    schema["properties"]["schema"] = {"type": "integer", "minimum": 0, "maximum": SCHEMA_VERSION,
                                      "default": SCHEMA_VERSION, "description": "spec file format version"}
    if not resolved:
        for name in _MERGED_MODELS:
            schema["$defs"].get(name, {}).pop("required", None)
        schema["required"] = ["name"]
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
              "title": f"deliver distributor spec (schema {SCHEMA_VERSION})" + (" — resolved" if resolved else ""),
              **{k: v for k, v in schema.items() if k != "title"}}
    return schema


def render_resolved_yaml(spec: Spec) -> str:
    """The spec after ``extends`` as a standalone YAML file (loads back to an equal spec)."""
    data = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    chain = data.pop("extends", None)
    header = [f"{SCHEMA_COMMENT}{SCHEMA_FILE.as_uri()}",
              f"# {spec.name}, resolved by deliver: every extends applied"
              + (f" (extends: {chain if isinstance(chain, str) else ', '.join(chain)})" if chain else "") + "."]
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)
    return "\n".join(header) + "\n" + body


def write_json_schema(path: Path = SCHEMA_FILE) -> Path:
    """Write the authoring JSON Schema to ``path`` (the committed copy lives in specs/schema/)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec_json_schema(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def explain(spec: Spec) -> str:
    """The checklist a QC operator signs for ``spec`` (Markdown)."""
    from specs._explain import render_checklist

    return render_checklist(spec)
