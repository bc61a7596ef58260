"""Model semantics: rationals, tolerances, timecode, extends merge, upgrades, name templates."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from pydantic import ValidationError

from specs.errors import SpecError
from specs.loader import lint_paths, load_spec, render_deliverable_name
from specs.model import KNOWN_CHECKS, LoudnessSpec, PictureSpec, Tolerance, parse_frame_rate


@pytest.mark.parametrize("raw,expected", [
    (25, Fraction(25)), ("25", Fraction(25)), ("24000/1001", Fraction(24000, 1001)),
    (29.97, Fraction(30000, 1001)), ("29.97", Fraction(30000, 1001)), (23.976, Fraction(24000, 1001)),
    (59.94, Fraction(60000, 1001)), (50.0, Fraction(50)), (Fraction(48), Fraction(48)),
])
def test_frame_rates_are_rationals(raw: object, expected: Fraction) -> None:
    assert parse_frame_rate(raw) == expected
    assert PictureSpec(frame_rates=[raw]).frame_rates == [expected]


def test_frame_rate_json_form() -> None:
    dumped = PictureSpec(frame_rates=[25, 29.97]).model_dump(mode="json")
    assert dumped["frame_rates"] == [25, "30000/1001"]


@pytest.mark.parametrize("raw", ["25p", "abc", 0, -25, 29.5, "1/0", True])
def test_bad_frame_rates(raw: object) -> None:
    with pytest.raises(ValidationError):
        PictureSpec(frame_rates=[raw])


def test_tolerance_forms() -> None:
    assert LoudnessSpec(method="bs1770-4", tolerance_lu=2).tolerance_lu == Tolerance(minus=2, plus=2)
    asym = LoudnessSpec(method="bs1770-4", target_lufs=-24, tolerance_lu={"minus": 3, "plus": 0}).tolerance_lu
    assert (asym.minus, asym.plus) == (3, 0)
    assert asym.contains(-24, -26.9) and not asym.contains(-24, -23.9)
    with pytest.raises(ValidationError):
        LoudnessSpec(method="bs1770-4", tolerance_lu={"minus": 1})


def test_known_checks_catalogue() -> None:
    for check_id, info in KNOWN_CHECKS.items():
        assert info.default_severity in ("error", "warning", "info", "off") and info.description
        assert check_id.count(".") >= 1
    spec = load_spec("demo")
    assert spec.check("picture.freeze").min_duration_s == 5
    assert spec.check("audio.clipping").severity == KNOWN_CHECKS["audio.clipping"].default_severity
    with pytest.raises(KeyError):
        spec.check("picture.nope")


def _child(tmp_path: Path, body: str, name: str = "child.yaml") -> Path:
    path = tmp_path / name
    path.write_text("schema: 1\nname: child\nextends: ebu-r128\ndescription: c\n"
                    "provenance: {document: d, confidence: NC}\n" + body, encoding="utf-8")
    return path


def test_extends_deep_merge_and_list_replace(tmp_path: Path) -> None:
    spec = load_spec(_child(tmp_path, "picture: {width: 1280, height: 720}\n"
                            "checks: {picture.freeze: {min_duration_s: 9}}\n"
                            "deliverables:\n  - {id: only, kind: audio-stem, container: wav, "
                            "audio: [{from_track: stereo-20, codec: pcm_s24le}], name: 'x_{id}.wav'}\n"))
    base = load_spec("ebu-r128")
    # mappings merge key by key
    assert (spec.picture.width, spec.picture.height) == (1280, 720)
    assert spec.picture.codec == base.picture.codec == "prores"
    assert spec.picture.colour == base.picture.colour
    # a check entry merges too: severity kept from the base, threshold overridden
    assert spec.check("picture.freeze").severity == "warning" and spec.check("picture.freeze").min_duration_s == 9
    # lists replace
    assert [d.id for d in spec.deliverables] == ["only"]
    assert spec.audio.tracks == base.audio.tracks
    # per-file keys are not inherited
    assert spec.name == "child" and spec.provenance.document == "d" and spec.sources == []


def test_null_removes_an_inherited_value(tmp_path: Path) -> None:
    spec = load_spec(_child(tmp_path, "timing: {ffoa_timecode: null}\npicture: {colour: null}\n"))
    assert spec.timing.ffoa_timecode is None and spec.picture.colour is None


def test_missing_severity_takes_the_default_and_vocabulary_maps(tmp_path: Path) -> None:
    spec = load_spec(_child(tmp_path, "severity_names: {error: Stop, warning: Look}\n"
                            "checks: {picture.commercial_blacks: {min_duration_s: 3}, audio.silence: look,"
                            " picture.black: {severity: STOP}}\n"))
    assert spec.check("picture.commercial_blacks").severity == "off"
    assert spec.check("audio.silence").severity == "warning"
    assert spec.check("picture.black").severity == "error"
    assert spec.severity_name("warning") == "Look"


@pytest.mark.parametrize("tc,rates,ok", [
    ("01:00:00;00", "[30000/1001]", True),
    ("01:10:00;00", "[30000/1001]", True),
    ("01:01:00;02", "[30000/1001]", True),
    ("01:01:00;01", "[30000/1001]", False),
    ("01:01:00;03", "[60000/1001]", False),
    ("01:01:00;04", "[60000/1001]", True),
    ("01:00:00;00", "[25]", False),
])
def test_drop_frame_timecode_validity(tmp_path: Path, tc: str, rates: str, ok: bool) -> None:
    path = _child(tmp_path, f"picture: {{frame_rates: {rates}}}\ntiming: {{ffoa_timecode: '{tc}', drop_frame: true}}\n")
    issues = lint_paths([path])
    assert (issues == []) is ok, issues


def test_schema_0_is_upgraded(tmp_path: Path) -> None:
    path = _child(tmp_path, "picture: {frame_rate: 25}\ntiming: {start_timecode: '10:00:00:00'}\naudio:\n  tracks:\n"
                  "    - {id: st, label: st, layout: '2.0', channels: [L, R],\n"
                  "       loudness: {method: bs1770-4, target: -23, tolerance: 1, true_peak: -1}}\n"
                  "deliverables:\n  - {id: w, kind: audio-stem, container: wav, audio: [{from_track: st, codec: "
                  "pcm_s24le}], name: '{title}.wav'}\n")
    path.write_text(path.read_text().replace("schema: 1", "schema: 0"))
    spec = load_spec(path)
    assert spec.picture.frame_rates == [Fraction(25)] and spec.timing.ffoa_timecode == "10:00:00:00"
    loud = spec.track("st").loudness
    assert loud and loud.target_lufs == -23 and loud.max_true_peak_dbtp == -1 and spec.schema_version == 1
    # errors in an upgraded file still point at the line the author wrote
    path.write_text(path.read_text().replace("target: -23", "target: 23"))
    issue = lint_paths([path])[0]
    assert issue.line == 11 and "out of range" in issue.message


def test_render_deliverable_name() -> None:
    fields = {"title": "Film", "version": "v2", "id": "mezz", "spec": "netflix", "ext": "mov"}
    assert render_deliverable_name("{title}_{version}_{id}.{ext}", **fields) == "Film_v2_mezz.mov"
    assert render_deliverable_name("{spec}/{title}.{ext}", **fields) == "netflix/Film.mov"
    for bad in ("../x.mov", "/abs.mov", "{title}/../../x", "a\\b.mov", "{nope}.mov", "C:/x.mov", ""):
        with pytest.raises(SpecError):
            render_deliverable_name(bad, **fields)
    for value in ("../up", "a/b", "..", ""):
        with pytest.raises(SpecError):
            render_deliverable_name("{title}.mov", **{**fields, "title": value})


def test_unknown_builtin_name_suggests() -> None:
    with pytest.raises(SpecError, match="did you mean 'netflix'"):
        load_spec("netflx")
    with pytest.raises(SpecError, match="is a base"):
        load_spec("base/hd-prores")


def test_every_check_id_used_by_the_code_is_known() -> None:
    """Findings are made with spec.check(id): an id missing from KNOWN_CHECKS would raise KeyError."""
    import re

    root = Path(__file__).resolve().parents[2]
    pattern = re.compile(r"[\"']((?:metadata|picture|audio|timing|package)\.[a-z_]+(?:\.[a-z_]+)*)[\"']")
    used: dict[str, str] = {}
    for folder in ("tasks", "flows"):
        for path in (root / folder).rglob("*.py"):
            for check_id in pattern.findall(path.read_text(encoding="utf-8")):
                used.setdefault(check_id, str(path.relative_to(root)))
    unknown = {i: p for i, p in used.items() if i not in KNOWN_CHECKS}
    assert not unknown, f"add these ids to specs.model.KNOWN_CHECKS (or fix the code): {unknown}"
