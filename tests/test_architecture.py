"""The house rules of docs/architecture.md, checked on the source: imports go one way
(flows -> tasks -> specs), Prefect stays in flows/ and tasks/steps.py, and each concept has one
definition."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("flows", "tasks", "specs")


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every imported module name of a file, with its line (lazy imports inside functions included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize(("package", "forbidden"), [("specs", {"tasks", "flows", "bench", "tests"}),
                                                    ("tasks", {"flows", "bench", "tests"})])
def test_imports_go_one_way(package: str, forbidden: set[str]) -> None:
    upward = [f"{p.relative_to(ROOT)}:{line} imports {name}"
              for p in _modules(package) for line, name in _imports(p) if _top(name) in forbidden]
    assert upward == []


def test_prefect_is_only_in_flows_and_steps() -> None:
    # tasks/archive/s3.py may read credentials from a Prefect Secret / AwsCredentials block: a
    # credential source, not orchestration.
    allowed = {ROOT / "tasks" / "steps.py", ROOT / "tasks" / "archive" / "s3.py"}
    users = [f"{p.relative_to(ROOT)}:{line} imports {name}"
             for package in ("tasks", "specs") for p in _modules(package) if p not in allowed
             for line, name in _imports(p) if _top(name) in {"prefect", "prefect_aws", "prefect_dask"}]
    assert users == []


def _nodes() -> list[tuple[str, ast.AST]]:
    """Every AST node of flows/, tasks/ and specs/ with its ``file:line``."""
    out = []
    for package in PACKAGES:
        for p in _modules(package):
            out += [(f"{p.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}", node)
                    for node in ast.walk(ast.parse(p.read_text(), str(p)))]
    return out


def _definitions(kind: type[ast.AST], name: str) -> list[str]:
    return [where for where, node in _nodes() if isinstance(node, kind) and getattr(node, "name", None) == name]


@pytest.mark.parametrize(("kind", "name", "home"), [
    (ast.FunctionDef, "parse_frame_rate", "specs/timecode.py"),
    (ast.FunctionDef, "split_timecode", "specs/timecode.py"),
    (ast.ClassDef, "Timecode", "specs/timecode.py"),
    (ast.ClassDef, "Severity", "specs/severity.py"),
    (ast.ClassDef, "LoudnessSpec", "specs/model.py"),
    (ast.FunctionDef, "atomic_output", "tasks/media/files.py"),
    (ast.FunctionDef, "publish", "tasks/media/files.py"),
    (ast.FunctionDef, "hash_file_xxh128", "tasks/archive/hashing.py"),
    (ast.FunctionDef, "archive_step", "tasks/steps.py"),
    (ast.FunctionDef, "retry_on_infrastructure", "tasks/steps.py"),
    (ast.ClassDef, "ProgressReporter", "tasks/steps.py"),
    (ast.FunctionDef, "make_finding", "tasks/qc/findings.py"),
])
def test_one_definition_per_concept(kind: type[ast.AST], name: str, home: str) -> None:
    found = _definitions(kind, name)
    assert len(found) == 1 and found[0].startswith(home + ":"), found


def test_one_layout_table() -> None:
    tables = []
    for where, node in _nodes():
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        tables += [where for t in targets if isinstance(t, ast.Name) and t.id.lstrip("_").endswith("LAYOUTS")]
    assert len(tables) == 1 and tables[0].startswith("specs/layouts.py:"), tables


def test_no_module_getattr_import_shims() -> None:
    shims = [f"{p.relative_to(ROOT)}" for package in PACKAGES for p in _modules(package)
             for node in ast.parse(p.read_text()).body
             if isinstance(node, ast.FunctionDef) and node.name == "__getattr__"]
    assert shims == []


def test_flows_take_one_request() -> None:
    """Every flow in flows/ takes at most one parameter, a typed request model."""
    from flows.archive import archive_flow
    from flows.deliver import deliver_flow
    from flows.nightly import nightly_qc_flow
    from flows.qc import qc_flow
    from flows.verify import verify_flow

    for f in (deliver_flow, qc_flow, archive_flow, verify_flow, nightly_qc_flow):
        params = f.parameters.properties
        assert list(params) == ["request"], (f.name, list(params))
