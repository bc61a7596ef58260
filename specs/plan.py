"""A title's delivery plan: every distributor of a co-production from one master and one set of mixes.

A plan is a YAML file per title (``deliver run --plan FILE``), read with the spec loader's safe YAML
reader (:mod:`specs._yaml`: positions, duplicate keys, the same size and depth limits) and validated by
:class:`Plan`; every problem is reported as ``file:line:column: message``. Relative paths (master, mixes,
spec files, archive folders) are resolved against the plan file's folder, so a plan travels with its
media. Each distributor names a spec (built-in or path) and may override spec fields
(``overrides:``, merged key by key onto the loaded spec) and run fields (recipient for watermarks,
territory, language).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from specs._yaml import load_marked
from specs.errors import SpecError
from specs.loader import MAX_SPEC_BYTES, SPECS_DIR, LintIssue, builtin_names, load_spec
from specs.model import Spec

__all__ = ["Plan", "Distributor", "PLAN_SCHEMA_FILE", "load_plan", "lint_plan", "plan_json_schema",
           "write_plan_schema", "distributor_spec", "plan_from_fields", "apply_overrides"]

PLAN_SCHEMA_VERSION = 1
PLAN_SCHEMA_FILE = SPECS_DIR / "schema" / f"deliver-plan-{PLAN_SCHEMA_VERSION}.json"

#: A distributor's name becomes its package folder (OUT/<name>/): the spec-name alphabet.
_DISTRIBUTOR_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


class Distributor(BaseModel):
    """One partner or broadcaster of the title: the spec it stipulated and its run fields."""

    model_config = ConfigDict(extra="forbid")

    spec: str = Field(..., min_length=1, description="Built-in spec name (deliver spec list) or a spec YAML path, "
                      "relative to the plan file.")
    name: str | None = Field(None, description="Package folder and report name; default: the spec's name. "
                             "Required to tell apart two distributors of the same spec.")
    overrides: dict[str, Any] = Field(default_factory=dict, description="Spec fields replaced for this distributor, "
                                      "merged key by key onto the spec (lists replaced whole).")
    recipient: str | None = Field(None, description="Screener recipient burnt into watermarks ({recipient}).")
    territory: str | None = Field(None, description="Territory of this distribution (ISO 3166-1 alpha-2, e.g. GB).")
    lang: str | None = Field(None, description="Language of this version for {lang} in names, BCP 47 (en, fr-CA).")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not _DISTRIBUTOR_NAME.match(value):
            raise ValueError(f"name {value!r} becomes a folder name: use lowercase letters, digits, '.', '-', '_'")
        return value


class Plan(BaseModel):
    """A title's delivery plan (``deliver run --plan``)."""

    model_config = ConfigDict(extra="forbid")

    schema_: int = Field(PLAN_SCHEMA_VERSION, alias="schema", description="Plan schema version.")
    title: str = Field(..., min_length=1, description="Title used in deliverable names.")
    version: str = Field("v1", min_length=1, description="Version used in deliverable names.")
    languages: list[str] = Field(default_factory=list, description="Languages of the title (BCP 47).")
    master: str = Field(..., min_length=1, description="Conformed picture master, relative to the plan file.")
    mixes: list[str] = Field(..., min_length=1, description="Final mixes as deliver run --mix takes them: a path, "
                             "or L,R,C,LFE,Ls,Rs=path; relative to the plan file.")
    distributors: list[Distributor] = Field(..., min_length=1, description="Every distributor of the title.")
    archive: list[str] = Field(default_factory=list, description="Archive targets: names from configs/storage.yaml "
                               "or URIs; relative folders are resolved against the plan file.")

    @model_validator(mode="after")
    def _unique_names(self) -> Plan:
        seen: dict[str, int] = {}
        for i, d in enumerate(self.distributors):
            name = d.name or Path(d.spec).stem
            if name in seen:
                raise ValueError(f"distributors {seen[name]} and {i} are both named {name!r}: give one a 'name:' "
                                 "(it becomes its package folder)")
            seen[name] = i
        return self

    def names(self) -> list[str]:
        """Each distributor's package name (its ``name``, else its spec's name)."""
        return [d.name or Path(d.spec).stem for d in self.distributors]


def apply_overrides(spec: Spec, overrides: dict[str, Any]) -> Spec:
    """``spec`` with ``overrides`` merged key by key (mappings merged, anything else replaced), validated again."""
    if not overrides:
        return spec

    def merge(base: Any, over: Any) -> Any:
        if isinstance(base, dict) and isinstance(over, dict):
            return {**base, **{k: merge(base.get(k), v) for k, v in over.items()}}
        return over

    data = merge(json.loads(spec.model_dump_json(by_alias=True, exclude_none=True)), overrides)
    return Spec.model_validate(data)


def distributor_spec(d: Distributor) -> Spec:
    """The spec a distributor gets: loaded, with its overrides.

    Raises:
        SpecError: the spec cannot be loaded, or the overrides do not validate.
    """
    spec = load_spec(d.spec)
    try:
        return apply_overrides(spec, d.overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SpecError(f"overrides of {d.name or d.spec}: {where}: {first['msg']}") from None


def _resolve(value: str, base: Path) -> str:
    """A path relative to the plan file, absolute; URIs and names from configs/storage.yaml stay as written."""
    if "://" in value:
        return value
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def _resolve_mix(value: str, base: Path) -> str:
    labels, sep, path = value.rpartition("=")
    return f"{labels}{sep}{_resolve(path, base)}" if sep else _resolve(value, base)


def _resolve_paths(plan: Plan, base: Path) -> Plan:
    def spec_ref(ref: str) -> str:
        # a built-in name stays a name; anything with a separator or .yaml is a file next to the plan
        return ref if ref in builtin_names() and not (base / ref).exists() else _resolve(ref, base)

    def archive(target: str) -> str:
        return _resolve(target, base) if target.startswith((".", "/", "~")) else target

    return plan.model_copy(update={
        "master": _resolve(plan.master, base),
        "mixes": [_resolve_mix(m, base) for m in plan.mixes],
        "archive": [archive(t) for t in plan.archive],
        "distributors": [d.model_copy(update={"spec": spec_ref(d.spec), "name": d.name or Path(d.spec).stem})
                         for d in plan.distributors]})


def _read(path: Path) -> tuple[Plan | None, list[LintIssue]]:
    display = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_SPEC_BYTES:
            return None, [LintIssue(display, 1, 1, f"plan file is {size / 1e6:.1f} MB; a plan may be at most "
                                    f"{MAX_SPEC_BYTES // 1_000_000} MB", "is this the right file?")]
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None, [LintIssue(display, 1, 1, "file is not UTF-8 text", "save the plan as UTF-8")]
    except OSError as exc:
        return None, [LintIssue(display, 1, 1, f"cannot read plan file: {exc.strerror or exc}", "check the path")]
    doc, problems = load_marked(text)
    issues = [LintIssue(display, p.mark.line, p.mark.column, p.message, p.hint) for p in problems]
    if doc is None:
        return None, issues
    if not isinstance(doc.data, dict):
        return None, issues + [LintIssue(display, 1, 1, "a plan is a mapping (title:, master:, distributors: …)")]
    try:
        plan = Plan.model_validate(doc.data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            mark = doc.mark_for(loc, prefer_key=err["type"] == "extra_forbidden")
            where = ".".join(str(p) for p in loc)
            msg = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "missing":
                msg = f"missing required field {where!r}"
            elif where:
                msg = f"{where}: {msg}"
            issues.append(LintIssue(display, mark.line if mark else 1, mark.column if mark else 1, msg))
        return None, issues
    if issues:
        return None, issues
    # every distributor's spec must load and take its overrides
    plan = _resolve_paths(plan, path.resolve().parent)
    for i, d in enumerate(plan.distributors):
        try:
            distributor_spec(d)
        except SpecError as exc:
            mark = doc.mark_for(("distributors", i, "overrides" if d.overrides and "overrides" in str(exc)
                                 else "spec"))
            issues.append(LintIssue(display, mark.line if mark else 1, mark.column if mark else 1,
                                    f"distributor {d.name}: {exc}"))
    return (None if issues else plan), issues


def lint_plan(path: str | Path) -> list[LintIssue]:
    """Every problem of a plan file as :class:`~specs.loader.LintIssue` (file:line:column)."""
    return _read(Path(path))[1]


def load_plan(path: str | Path) -> Plan:
    """A plan with its relative paths resolved against its folder and every distributor's spec checked.

    Raises:
        SpecError: every problem as ``file:line:column: message``.
    """
    plan, issues = _read(Path(path))
    if plan is None:
        message = str(issues[0]) if len(issues) == 1 else (
            f"{len(issues)} problems in plan: " + "; ".join(str(i) for i in issues))
        error = SpecError(message)
        error.issues = issues
        raise error
    return plan


def plan_from_fields(*, title: str, version: str, master: str, mixes: list[str], specs: list[str],
                     archive: list[str], recipient: str | None = None, lang: str | None = None) -> Plan:
    """The plan ``deliver run --spec A --spec B …`` means: several distributors, one master and one set of mixes."""
    return Plan.model_validate({"title": title, "version": version, "master": master, "mixes": mixes,
                                "archive": archive, "distributors": [
                                    {"spec": s, "name": Path(s).stem, "recipient": recipient, "lang": lang}
                                    for s in specs]})


def plan_json_schema() -> dict[str, Any]:
    schema = Plan.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "deliver delivery plan"
    return schema


def write_plan_schema(path: Path = PLAN_SCHEMA_FILE) -> Path:
    path.write_text(json.dumps(plan_json_schema(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
