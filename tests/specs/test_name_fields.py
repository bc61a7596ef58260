"""Deliverable name templates: the run fields ({date}, {lang}, {recipient}, {deliverable}) are allowed
and still cannot leave the output folder."""

import pytest

from specs.errors import SpecError
from specs.loader import render_deliverable_name


def test_run_fields_render():
    name = render_deliverable_name("{title}/{title}_{deliverable}_{lang}_{recipient}_{date}.{ext}", title="FILM",
                                   deliverable="screener", lang="en", recipient="ACME", date="2026-11-21", ext="mp4")
    assert name == "FILM/FILM_screener_en_ACME_2026-11-21.mp4"


def test_missing_recipient_says_which_field():
    with pytest.raises(SpecError, match=r"needs a value for \{recipient\}"):
        render_deliverable_name("{title}_{recipient}.mp4", title="FILM")


@pytest.mark.parametrize("value", ["../x", "a/b", "..", ""])
def test_field_values_cannot_change_folders(value):
    with pytest.raises(SpecError, match="would change folders"):
        render_deliverable_name("{title}_{recipient}.mp4", title="FILM", recipient=value)
