"""The one channel-layout table: spec words, ffmpeg names, labels per vocabulary, weights."""

from __future__ import annotations

import pytest

from specs.errors import MediaError
from specs.layouts import (
    LAYOUTS,
    SPEC_LAYOUT_NAMES,
    channel_weights,
    default_layout,
    ffmpeg_layout,
    ffmpeg_positions,
    labels_for_positions,
    layout_labels,
    layout_name,
    loudness_labels,
    spec_layout,
)


def test_spec_words_and_ffmpeg_names() -> None:
    assert SPEC_LAYOUT_NAMES == ("mono", "2.0", "3.0", "4.0", "5.0", "5.1", "7.1")
    assert {w: ffmpeg_layout(w) for w in ("mono", "1.0", "2.0", "stereo", "3.0", "4.0", "5.0", "5.1", "7.1")} == {
        "mono": "mono", "1.0": "mono", "2.0": "stereo", "stereo": "stereo", "3.0": "3.0", "4.0": "4.0",
        "5.0": "5.0", "5.1": "5.1", "7.1": "7.1"}
    assert ffmpeg_layout("5.1(side)") is None  # ffmpeg's name, not a spec word
    with pytest.raises(KeyError):
        spec_layout("quad")
    for layout in LAYOUTS:
        assert layout.channels == len(layout.positions)
        assert not layout.labels or len(layout.labels) == layout.channels


def test_positions_are_ffmpeg_order_labels_film_order() -> None:
    seven = spec_layout("7.1")
    assert ffmpeg_positions("7.1") == ("FL", "FR", "FC", "LFE", "BL", "BR", "SL", "SR")
    assert seven.labels == ("L", "R", "C", "LFE", "Lss", "Rss", "Lrs", "Rrs")
    assert labels_for_positions(seven.positions) == ("L", "R", "C", "LFE", "Lrs", "Rrs", "Lss", "Rss")
    assert labels_for_positions(ffmpeg_positions("5.1(side)") or ()) == ("L", "R", "C", "LFE", "Ls", "Rs")
    assert labels_for_positions(["FC"]) == ("M",)


def test_loudness_labels_and_bs1770_weights() -> None:
    assert layout_labels("7.1") == ("L", "R", "C", "LFE", "Ls", "Rs", "Lb", "Rb")
    assert layout_labels("stereo") == layout_labels("2.0") == ("L", "R")
    assert layout_labels("4.0") == ("L", "R", "C", "Cs")
    assert channel_weights(layout_labels("7.1")) == (1.0, 1.0, 1.0, 0.0, 1.41, 1.41, 1.0, 1.0)
    assert loudness_labels(["Lss", "Rrs", "M"]) == ("Ls", "Rb", "M")
    with pytest.raises(MediaError, match="unknown channel layout"):
        layout_labels("9.1")
    with pytest.raises(MediaError, match="has 6 channels but the audio has 2"):
        layout_labels("5.1", 2)


def test_defaults_by_channel_count() -> None:
    assert {n: (default_layout(n).name if default_layout(n) else None) for n in range(1, 9)} == {
        1: "mono", 2: "2.0", 3: None, 4: None, 5: "5.0", 6: "5.1", 7: None, 8: "7.1"}
    assert layout_name(("L", "R", "C", "LFE", "Lb", "Rb", "Ls", "Rs")) == "7.1"
    assert layout_name(("L", "R", "C")) == "custom(L R C)"
