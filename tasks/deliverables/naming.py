"""Names and burn-in text of deliverables: the run's fields (title, version, recipient, date, language) and the
spec's name templates, resolved inside the output folder.

Language tags are BCP 47 (IETF RFC 5646) with ISO 639 primary subtags.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from pydantic import BaseModel, Field

from specs.errors import BadInputError
from specs.model import Deliverable, Spec, render_deliverable_name

__all__ = ["RunFields", "language_tag", "fill_text", "deliverable_path"]

_LANGUAGE_TAG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


def language_tag(value: str) -> str:
    """``value`` if it is a BCP 47 language tag (``en``, ``de``, ``fr-CA``, ``und``), for ``{lang}`` in names.

    Raises:
        BadInputError: anything else (a name, a path, upper case primary subtag).
    """
    if not _LANGUAGE_TAG.match(value):
        raise BadInputError(f"--lang {value!r} is not a language tag; use ISO 639 / BCP 47 such as en, de, fr-CA "
                            "(und when undetermined)")
    return value


class RunFields(BaseModel):
    """Run parameters that reach names and burn-ins: title, version, recipient (watermark), date, language."""

    title: str
    version: str = "v1"
    recipient: str | None = None
    date: str = Field(default_factory=lambda: dt.date.today().isoformat())
    lang: str = Field("und", pattern=_LANGUAGE_TAG.pattern, description="BCP 47 tag for {lang} in names")


def fill_text(template: str, fields: RunFields, d: Deliverable) -> str:
    """``template`` (burn-in or watermark text) with the run's fields and the deliverable's id filled in.

    Raises:
        BadInputError: the text names a field that does not exist.
    """
    values = {"title": fields.title, "version": fields.version, "date": fields.date, "id": d.id,
              "deliverable": d.id, "lang": fields.lang, "recipient": fields.recipient or ""}
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError) as exc:
        raise BadInputError(f"deliverable {d.id}: text {template!r} has an unknown field {exc}; use "
                            f"{', '.join('{' + k + '}' for k in values)}") from None


def deliverable_path(d: Deliverable, spec: Spec, out_dir: str | Path, fields: RunFields) -> Path:
    """Final path of ``d`` from its name template; never outside ``out_dir``.

    Raises:
        SpecError: the template or a field value would leave the output folder.
    """
    root = Path(out_dir).resolve()
    extra = {"recipient": fields.recipient} if fields.recipient else {}  # {recipient} needs --recipient
    name = render_deliverable_name(d.name, title=fields.title, version=fields.version, id=d.id, spec=spec.name,
                                   ext=d.container, date=fields.date, deliverable=d.id, lang=fields.lang, **extra)
    path = (root / name).resolve()
    if root not in path.parents:
        raise BadInputError(f"deliverable name {name!r} resolves outside {root}; fix the name template")
    return path
