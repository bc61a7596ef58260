"""Broken spec files: every problem is reported with its message, line and column, and a hint."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from specs.errors import SpecError
from specs.loader import LintIssue, lint_paths, load_spec

# A small valid spec (extends the demo spec); each case below breaks one line of a copy of it.
GOOD = """\
# yaml-language-server: $schema=../schema/deliver-spec-1.json
schema: 1
name: broken
extends: demo
description: test spec
provenance: {document: test, confidence: NC}
picture:
  frame_rates: [25]
audio:
  tracks:
    - id: main-51
      label: 5.1
      layout: "5.1"
      channels: [L, R, C, LFE, Ls, Rs]
      loudness:
        method: bs1770-4
        target_lufs: -24
        tolerance_lu: 1
        max_true_peak_dbtp: -1
    - id: stereo-20
      label: 2.0
      layout: "2.0"
      channels: [L, R]
timing:
  ffoa_timecode: "01:00:00:00"
checks:
  picture.freeze: {severity: warning, min_duration_s: 5}
deliverables:
  - id: mezzanine
    kind: mezzanine
    container: mov
    video: {codec: prores_ks, profile: hq}
    audio:
      - {from_track: main-51, codec: pcm_s24le}
    name: "{title}_{version}_{id}.{ext}"
"""


def _write(tmp_path: Path, text: str, name: str = "broken.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _lint(tmp_path: Path, text: str, name: str = "broken.yaml") -> list[LintIssue]:
    return lint_paths([_write(tmp_path, text, name)])


def _replace(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new, 1)


def _one(issues: list[LintIssue]) -> LintIssue:
    assert len(issues) == 1, "\n".join(map(str, issues))
    return issues[0]


def test_good_spec_is_clean(tmp_path: Path) -> None:
    assert _lint(tmp_path, GOOD) == []
    spec = load_spec(_write(tmp_path, GOOD))
    assert spec.name == "broken" and spec.picture.width == 320  # inherited from demo


# (id, replace old, with new, expected line, expected column or None, message parts, hint part)
CASES = [
    ("misspelled-key", "        target_lufs: -24", "        targt_lufs: -24", 17, 9,
     ["unknown key 'targt_lufs'", "audio.tracks[0].loudness"], "did you mean 'target_lufs'?"),
    ("unknown-top-key", "timing:\n", "colour_grade: warm\ntiming:\n", 24, 1,
     ["unknown key 'colour_grade'"], "allowed keys"),
    ("wrong-type-mapping", "  frame_rates: [25]", "  frame_rates: [25]\n  colour: bt709", 9, 11,
     ["colour must be a mapping"], "indented"),
    ("non-numeric", "        max_true_peak_dbtp: -1", "        max_true_peak_dbtp: loud", 19, 29,
     ["'loud' is not a number", "dBTP"], "plain number"),
    ("wrong-unit", "        target_lufs: -24", "        target_lufs: -23 dB", 17, 22,
     ["'-23 dB' is in dB but this value is in LUFS"], "convert to LUFS"),
    ("unit-in-value", "        target_lufs: -24", "        target_lufs: -23 LUFS", 17, 22,
     ["carries a unit"], "write -23 without the unit"),
    ("positive-lufs", "        target_lufs: -24", "        target_lufs: 23", 17, 22,
     ["23 LUFS is out of range"], "did you mean -23?"),
    ("unknown-severity", "{severity: warning, min_duration_s: 5}", "{severity: critical, min_duration_s: 5}",
     27, 30, ["unknown severity 'critical'"], "use one of error, warning, info, off"),
    ("unknown-check", "  picture.freeze:", "  picture.frieze:", 27, 3,
     ["unknown check id 'picture.frieze'"], "did you mean 'picture.freeze'?"),
    ("layback-offset-unit", "timing:\n  ffoa_timecode: \"01:00:00:00\"",
     "timing:\n  ffoa_timecode: \"01:00:00:00\"\n  max_layback_offset_s: 2 frames", 26, 25,
     ["'2 frames' is in frames but this value is in s"], "convert to s"),
    ("yaml-syntax", "  frame_rates: [25]", "  frame_rates: [25", 9, None,
     ["YAML syntax error"], "indentation"),
    ("duplicate-key", "timing:\n  ffoa_timecode: \"01:00:00:00\"",
     "timing:\n  ffoa_timecode: \"01:00:00:00\"\n  ffoa_timecode: \"10:00:00:00\"", 26, 3,
     ["duplicate key 'ffoa_timecode'"], "already set on line 25"),
    ("template-dotdot", 'name: "{title}_{version}_{id}.{ext}"', 'name: "../x.mov"', 35, 11,
     ["contains '..'", "outside the output folder"], "relative to the output folder"),
    ("template-absolute", 'name: "{title}_{version}_{id}.{ext}"', 'name: "/abs.mov"', 35, 11,
     ["absolute path"], "relative to the output folder"),
    ("template-climb", 'name: "{title}_{version}_{id}.{ext}"', 'name: "{title}/../../x.mov"', 35, 11,
     ["contains '..'"], None),
    ("template-field", 'name: "{title}_{version}_{id}.{ext}"', 'name: "{titel}.mov"', 35, 11,
     ["unknown field '{titel}'"], "did you mean 'title'?"),
    ("channels-mismatch", "      channels: [L, R, C, LFE, Ls, Rs]", "      channels: [L, R, C, LFE, Ls]", 14, 7,
     ["layout 5.1 has 6 channel(s) but channels lists 5"], "list every channel"),
    ("drop-frame-at-25", "  ffoa_timecode: \"01:00:00:00\"", "  ffoa_timecode: \"01:00:00:00\"\n  drop_frame: true",
     26, 15, ["drop-frame timecode is impossible at 25 fps"], "29.97"),
    ("document-kind", "timing:\n", "documents:\n  - {id: cue, kind: cue-sheet}\ntiming:\n", 25, 21,
     ["'cue-sheet' is not allowed for kind"], "did you mean 'music-cue-sheet'?"),
    ("unknown-track", "{from_track: main-51, codec: pcm_s24le}", "{from_track: main-5.1, codec: pcm_s24le}", 34, 22,
     ["maps unknown audio track 'main-5.1'"], "did you mean 'main-51'?"),
    ("frame-rate-with-scan", "  frame_rates: [25]", "  frame_rates: [25p]", 8, 17,
     ["'25p' is not a frame rate"], "picture.scan"),
    ("bad-layout", '      layout: "5.1"', '      layout: "5.l"', 13, 15,
     ["'5.l' is not a known layout"], "did you mean '5.1'?"),
    ("bad-channel-label", "      channels: [L, R, C, LFE, Ls, Rs]", "      channels: [L, R, C, Lfe, Ls, Rs]", 14, 27,
     ["'Lfe' is not a channel label"], "did you mean 'LFE'?"),
    ("speech-share-over-100", "        max_true_peak_dbtp: -1", "        max_true_peak_dbtp: -1\n"
     "        min_speech_percent: 150", 20, 29, ["150 % is out of range", "100 %"], "between 0 and 100"),
    ("negative-tolerance", "        tolerance_lu: 1", "        tolerance_lu: {minus: -1, plus: 2}", 18, 31,
     ["minus", "greater than or equal to 0"], None),
    ("param-not-used", "  picture.freeze: {severity: warning, min_duration_s: 5}",
     "  picture.freeze: {severity: warning, min_duration_s: 5}\n"
     "  timing.head_tail_black: {severity: error, threshold: 3}",
     28, 56, ["check timing.head_tail_black does not use threshold"], "no thresholds"),
    ("wav-with-video", "    container: mov", "    container: wav", 32, 5,
     ["a wav deliverable cannot have video"], "remove video"),
    ("extends-missing", "extends: demo", "extends: dem", 4, 10,
     ["extends: 'dem' not found"], "did you mean 'demo'?"),
    ("bad-colour-vocabulary", "  frame_rates: [25]", "  frame_rates: [25]\n  colour: {primaries: bt.709}", 9, 23,
     ["'bt.709' is not a known colour primaries"], "did you mean 'bt709'?"),
    ("bad-timecode", "  ffoa_timecode: \"01:00:00:00\"", "  ffoa_timecode: \"1:00:00\"", 25, 18,
     ["'1:00:00' is not a timecode"], "HH:MM:SS:FF"),
    ("frame-beyond-rate", "  ffoa_timecode: \"01:00:00:00\"", "  ffoa_timecode: \"01:00:00:27\"", 25, 18,
     ["frame 27 does not exist at 25 fps"], "00..24"),
    ("newer-schema", "schema: 1", "schema: 7", 2, 9, ["schema 7 is newer"], "upgrade deliver"),
    ("bad-kind", "    kind: mezzanine", "    kind: mezanine", 30, 11,
     ["'mezanine' is not allowed for kind"], "did you mean 'mezzanine'?"),
    ("bool-for-number", "      label: 2.0\n", "      label: 2.0\n", 21, 14, [], None),  # placeholder, filtered below
]
CASES = [c for c in CASES if c[5]]


@pytest.mark.parametrize("case_id,old,new,line,column,parts,hint", CASES, ids=[c[0] for c in CASES])
def test_broken_spec(tmp_path: Path, case_id: str, old: str, new: str, line: int, column: int | None,
                     parts: list[str], hint: str | None) -> None:
    issue = _one(_lint(tmp_path, _replace(old, new)))
    assert issue.path.endswith("broken.yaml"), issue
    for part in parts:
        assert part in issue.message, issue
    if hint:
        assert issue.hint and hint in issue.hint, issue
    assert issue.line == line, issue
    if column is not None:
        assert issue.column == column, issue
    # load_spec raises one SpecError with the same file:line:column text.
    with pytest.raises(SpecError) as raised:
        load_spec(tmp_path / "broken.yaml")
    assert f"broken.yaml:{issue.line}:{issue.column}: " in str(raised.value)
    assert raised.value.exit_code == 2


def test_many_problems_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace("        target_lufs: -24", "        targt_lufs: -24").replace(
        "  frame_rates: [25]", "  frame_rates: [25]\n  widht: 3").replace("{severity: warning,", "{severity: bad,")
    issues = _lint(tmp_path, text)
    messages = [i.message for i in issues]
    assert len(issues) == 3, messages
    assert any("targt_lufs" in m for m in messages) and any("widht" in m for m in messages)
    assert any("unknown severity 'bad'" in m for m in messages)
    with pytest.raises(SpecError) as raised:
        load_spec(tmp_path / "broken.yaml")
    assert "3 problems" in str(raised.value) and "\n" not in str(raised.value)
    assert len(raised.value.issues) == 3


def test_extends_cycle(tmp_path: Path) -> None:
    a = GOOD.replace("extends: demo", "extends: b.yaml").replace("name: broken", "name: a")
    b = GOOD.replace("extends: demo", "extends: a.yaml").replace("name: broken", "name: b")
    _write(tmp_path, b, "b.yaml")
    issues = _lint(tmp_path, a, "a.yaml")
    cycle = [i for i in issues if "extends cycle" in i.message]
    assert cycle, issues
    assert cycle[0].line == 4 and cycle[0].column == 10
    assert "a.yaml -> " in cycle[0].message and "b.yaml" in cycle[0].message
    with pytest.raises(SpecError, match="extends cycle"):
        load_spec(tmp_path / "a.yaml")


def test_self_extends(tmp_path: Path) -> None:
    issue = _one(_lint(tmp_path, GOOD.replace("extends: demo", "extends: ./broken.yaml")))
    assert "extends cycle" in issue.message and issue.line == 4


def test_error_in_parent_points_at_parent_file(tmp_path: Path) -> None:
    parent = GOOD.replace("name: broken", "name: parent").replace("        target_lufs: -24", "        target_lufs: 24")
    _write(tmp_path, parent, "parent.yaml")
    child = ("schema: 1\nname: child\nextends: parent.yaml\ndescription: child\n"
             "provenance: {document: test, confidence: NC}\n")
    issues = _lint(tmp_path, child, "child.yaml")
    assert issues and issues[0].path.endswith("parent.yaml") and issues[0].line == 17, issues


def test_missing_required_keys_without_extends(tmp_path: Path) -> None:
    text = "schema: 1\nname: lonely\ndescription: x\nprovenance: {document: d, confidence: P}\npicture: {}\n"
    issues = _lint(tmp_path, text)
    messages = {i.message for i in issues}
    assert "missing required key 'audio' in the top level" in messages
    assert "missing required key 'deliverables' in the top level" in messages


def test_nonexistent_drop_frame_label(tmp_path: Path) -> None:
    text = _replace("  frame_rates: [25]", "  frame_rates: [30000/1001]").replace(
        '  ffoa_timecode: "01:00:00:00"', '  ffoa_timecode: "01:01:00;01"\n  drop_frame: true')
    issue = _one(_lint(tmp_path, text))
    assert "does not exist in drop-frame timecode" in issue.message and issue.line == 25
    ok = text.replace("01:01:00;01", "01:10:00;00")
    assert _lint(tmp_path, ok) == []


def test_semicolon_without_drop_frame(tmp_path: Path) -> None:
    issue = _one(_lint(tmp_path, _replace('"01:00:00:00"', '"01:00:00;00"')))
    assert "uses ';' (drop-frame) but drop_frame is false" in issue.message and issue.line == 25


def test_abstract_base_cannot_be_loaded_but_lints(tmp_path: Path) -> None:
    text = ("schema: 1\nname: my-base\nabstract: true\ndescription: b\nprovenance: {document: d, confidence: S}\n"
            "picture: {codec: prores}\n")
    assert _lint(tmp_path, text) == []
    with pytest.raises(SpecError, match="is a base"):
        load_spec(_write(tmp_path, text))


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    text = GOOD.replace("description: test spec", "description: !!python/object/apply:os.system ['echo hi']")
    issues = _lint(tmp_path, text)
    assert issues and issues[0].line == 5, issues


def test_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for n in range(1, 9):
        lines.append(f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 10) + "]")
    issues = _lint(tmp_path, "\n".join(lines) + "\n")
    assert any("expands to more than" in i.message for i in issues), issues


def test_not_a_mapping(tmp_path: Path) -> None:
    issue = _one(_lint(tmp_path, "- just\n- a list\n"))
    assert "must be a mapping" in issue.message and issue.line == 1


def test_missing_file_is_bad_input(tmp_path: Path) -> None:
    # issue 14: nothing to lint is bad input (exit 2), not a lint finding (exit 1)
    from specs.errors import BadInputError

    with pytest.raises(BadInputError, match="nope.yaml: no such spec file or folder"):
        lint_paths([tmp_path / "nope.yaml"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="no spec files"):
        lint_paths([tmp_path / "empty"])
