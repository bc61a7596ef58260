"""Typed flow parameters for the deployments, so that the Prefect UI renders a proper form.

Prefect builds each deployment's parameter schema from the entry flow's signature: a pydantic
model becomes a nested form with titles and descriptions, an :class:`enum.Enum` becomes a drop-down.
:class:`SpecName` is built from the spec files shipped in ``specs/`` (``deliver spec list``); a
spec given as a path is still accepted through ``spec_path``.
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from specs.loader import builtin_names

__all__ = ["SpecName", "DeliverRequest", "QCRequest", "ArchiveRequest", "VerifyRequest", "NightlyRequest"]

#: Built-in delivery specs (``specs/<name>.yaml``), a drop-down in the UI.
SpecName = Enum("SpecName", {n.replace("-", "_"): n for n in builtin_names()}, type=str)  # type: ignore[misc]  # members come from the spec folder; mypy needs literal names
SpecName.__doc__ = "A built-in delivery spec (specs/<name>.yaml)."


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _WithSpec(_Request):
    spec: SpecName | None = Field(None, description="Built-in distributor spec.")
    spec_path: str | None = Field(None, description="Or a spec YAML path (on storage the workers share).")

    @model_validator(mode="after")
    def _one_spec(self) -> _WithSpec:
        if (self.spec is None) == (not self.spec_path):
            raise ValueError("give exactly one of spec (a built-in spec) or spec_path (a YAML file)")
        return self

    @property
    def spec_ref(self) -> str:
        """The value ``load_spec`` takes: a built-in name or a path."""
        return self.spec.value if self.spec is not None else str(self.spec_path)


class DeliverRequest(_WithSpec):
    """One title to lay back, QC, transcode, package and archive."""

    master: str = Field(..., description="Conformed picture master (MOV/MXF), a path on shared storage.")
    mixes: list[str] = Field(..., min_length=1, description="Final mix as BWF, one file per spec track.")
    title: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Title used in deliverable names.")
    version: str = Field("v1", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Version used in names.")
    out: str = Field(..., description="Output folder (deliverables, package, report.json).")
    archive: list[str] = Field(default_factory=list, description="Archive targets: names from configs/storage.yaml "
                               "or URIs (/path, file://, s3://).")
    force: bool = Field(False, description="Deliver despite error findings (recorded in the report).")


class QCRequest(_WithSpec):
    """QC of one master; only report.json is written."""

    path: str = Field(..., description="Master to check.")
    report: str = Field(..., description="Where to write report.json.")


class ArchiveRequest(_Request):
    package_dir: str = Field(..., description="Delivery package folder (with ascmhl/).")
    targets: list[str] = Field(..., min_length=1, description="Target names or URIs.")
    title: str = Field(..., description="Title recorded in the archive catalog.")


class VerifyRequest(_Request):
    uri: str = Field(..., description="A copy or a target: /path, file:///path or s3://bucket/prefix.")
    raise_on_mismatch: bool = Field(True, description="Fail the run on a mismatch.")


class NightlyRequest(_Request):
    config: str | None = Field(None, description="Nightly config file (default configs/nightly.yaml or "
                                  "$DELIVER_NIGHTLY_CONFIG).")
    night: str | None = Field(None, description="Night to run as (YYYY-MM-DD, in the configured timezone); "
                                 "default: tonight. Picks the fixity share.")
    force_all: bool = Field(False, description="QC every master, changed or not.")
