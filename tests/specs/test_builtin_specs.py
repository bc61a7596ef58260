"""Built-in specs: clean lint, load, JSON Schema validity, editor header, round trips."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import jsonschema
import pytest
import yaml

from specs.loader import (
    SCHEMA_COMMENT,
    SCHEMA_FILE,
    SPECS_DIR,
    builtin_base_names,
    builtin_names,
    explain,
    lint_paths,
    list_specs,
    load_spec,
    render_resolved_yaml,
    spec_json_schema,
)
from specs.model import KNOWN_CHECKS

REQUIRED = {"demo", "ebu-r128", "netflix", "amazon", "apple", "youtube", "atsc-a85", "dpp-as11", "ard-zdf"}
ALL_FILES = [SPECS_DIR / f"{n}.yaml" for n in builtin_names()] + [SPECS_DIR / f"{n}.yaml" for n in builtin_base_names()]


def test_required_specs_and_bases_exist() -> None:
    assert REQUIRED <= set(builtin_names())
    assert {"base/hd-prores", "base/pcm-48k-24"} <= set(builtin_base_names())
    assert {name for name, _ in list_specs()} == set(builtin_names())


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.stem)
def test_builtin_lints_clean_and_has_editor_header(path: Path) -> None:
    assert lint_paths([path]) == []
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith(SCHEMA_COMMENT)
    target = (path.parent / first[len(SCHEMA_COMMENT):]).resolve()
    assert target == SCHEMA_FILE.resolve(), "the $schema line must point at the committed schema"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert data["name"] == path.relative_to(SPECS_DIR).with_suffix("").as_posix()
    assert data["provenance"]["confidence"] in ("P", "S", "NC")
    # The authoring schema accepts the file as written (editors read unquoted dates as text).
    jsonschema.validate(json.loads(json.dumps(data, default=str)), spec_json_schema())


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_builtin_resolves_and_validates_against_json_schema(name: str) -> None:
    spec = load_spec(name)
    assert spec.name == name and spec.deliverables and spec.provenance.document
    dumped = spec.model_dump(mode="json", by_alias=True)
    jsonschema.validate(dumped, spec_json_schema(resolved=True))
    jsonschema.validate(dumped, spec_json_schema())
    resolved_yaml = json.loads(json.dumps(yaml.safe_load(render_resolved_yaml(spec)), default=str))
    jsonschema.validate(resolved_yaml, spec_json_schema(resolved=True))
    assert all(check in KNOWN_CHECKS for check in spec.checks)
    assert "Checked by:" in explain(spec)


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_resolved_yaml_round_trips(name: str, tmp_path: Path) -> None:
    spec = load_spec(name)
    path = tmp_path / f"{name}-resolved.yaml"
    path.write_text(render_resolved_yaml(spec), encoding="utf-8")
    again = load_spec(path)
    assert again.model_dump(exclude={"extends"}) == spec.model_dump(exclude={"extends"})


def test_committed_schema_is_in_sync() -> None:
    committed = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert committed == spec_json_schema(), \
        "regenerate: python -c 'from specs.loader import write_json_schema; write_json_schema()'"
    jsonschema.Draft202012Validator.check_schema(committed)


def test_demo_spec_contract() -> None:
    """The sample master of `deliver demo` and the tests must pass this spec."""
    spec = load_spec("demo")
    p = spec.picture
    assert (p.width, p.height, p.frame_rates, p.codec, p.profiles) == (320, 180, [Fraction(25)], "prores", ["HQ"])
    assert spec.timing.ffoa_timecode == "01:00:00:00" and not spec.timing.drop_frame
    assert [t.channels for t in spec.audio.tracks] == [["L", "R", "C", "LFE", "Ls", "Rs"], ["L", "R"]]
    assert (spec.audio.sample_rate_hz, spec.audio.bit_depth) == (48000, 24)
    for track in spec.audio.tracks:
        assert track.loudness and track.loudness.method == "bs1770-4"
        assert track.loudness.target_lufs == -24 and track.loudness.tolerance_lu.plus == 1
        assert track.loudness.max_true_peak_dbtp == -1
    kinds = {d.id: d for d in spec.deliverables}
    assert kinds["mezzanine"].container == "mov" and not kinds["mezzanine"].include_head
    assert [a.from_track for a in kinds["mezzanine"].audio] == ["main-51", "stereo-20"]
    screener = kinds["screener"]
    assert screener.container == "mp4" and screener.burn_in and screener.burn_in.timecode
    assert [(a.from_track, a.codec) for a in screener.audio] == [("stereo-20", "aac")]


def test_ebu_r128_accepts_a_prores_1080p25_master() -> None:
    spec = load_spec("ebu-r128")
    p = spec.picture
    assert (p.codec, p.profiles, p.width, p.height, p.frame_rates) == ("prores", ["HQ"], 1920, 1080, [Fraction(25)])
    assert p.scan is None  # 1080i25 and 1080p25 both pass
    assert spec.timing.ffoa_timecode == "10:00:00:00"
    loud = spec.track("main-51").loudness
    assert loud and loud.target_lufs == -23 and loud.tolerance_lu.contains(-23, -23.0)
    assert loud.max_true_peak_dbtp == -1


def test_netflix_contract() -> None:
    spec = load_spec("netflix")
    loud = spec.track("main-51").loudness
    assert loud and loud.method == "dialogue-gated" and loud.target_lufs == -27 and loud.max_true_peak_dbtp == -2
    assert loud.fallback and loud.fallback.method == "bs1770-4" and loud.fallback.target_lufs == -24
    assert loud.fallback.tolerance_lu.minus == 2
    assert spec.severity_names == {"error": "Blocker", "warning": "Issue", "info": "FYI"}
    blacks = spec.check("picture.commercial_blacks")
    assert blacks.severity == "error" and blacks.min_duration_s == 4
    assert spec.timing.head_black_s and spec.timing.head_black_s.max == 1.0
    assert spec.check("package.imf").severity == "off"
    assert spec.for_facts({"hdr": "dolby-vision"}).check("package.imf").severity == "error"
    assert any(m.id == "imf-packaging" for m in spec.manual_checks)
    assert spec.severity_name("error") == "Blocker"


def test_dpp_as11_lists_unchecked_items() -> None:
    spec = load_spec("dpp-as11")
    ids = {m.id for m in spec.manual_checks}
    assert {"as11-shim-dm", "pse", "segmentation", "afd", "audio-track-layout", "no-captions"} <= ids
    assert spec.severity_names["error"] == "Mandatory"
    assert sum(len(t.channels) for t in spec.audio.tracks) == 4


def test_atsc_when_rule_switches_to_720p() -> None:
    spec = load_spec("atsc-a85")
    assert spec.timing.drop_frame and spec.timing.ffoa_timecode == "01:00:00;00"
    hd = spec.for_facts({"frame_rate": Fraction(30000, 1001)})
    assert hd.picture.width == 1920
    p720 = spec.for_facts({"frame_rate": "60000/1001"})
    assert (p720.picture.width, p720.picture.height, p720.picture.scan) == (1280, 720, "progressive")
    assert spec.applied_rules({"frame_rate": 59.94}) == ["720p-at-59.94"]


def test_readme_worked_example_lints_clean(tmp_path: Path) -> None:
    import re

    text = (SPECS_DIR / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    path = tmp_path / "nordkanal.yaml"
    path.write_text(blocks[1] + blocks[2], encoding="utf-8")
    assert lint_paths([path]) == []
    assert load_spec(path).severity_name("error") == "Reject"
