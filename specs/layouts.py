"""Channel layouts: the one table of layouts, channel labels and BS.1770-4 channel weights.

A layout has a name (the word a spec writes in ``audio.tracks[].layout``), aliases, its channel
labels in film order (L R C LFE Ls Rs ..., SMPTE ST 428-3 / ITU-R BS.775), the ffmpeg channel-layout
name and ffmpeg's speaker positions in ffmpeg's channel order (the order of decoded samples and
of ``join`` maps), and its channel count. Rows marked ``spec=False`` are ffmpeg layouts that
probed media may carry but a spec cannot name; ``default=True`` rows are what a channel count
means when a file carries no channel mask.

Two label vocabularies exist and both are here:

* spec labels (:data:`CHANNEL_LABELS`): what a spec's ``channels:`` list and ``--mix`` maps use;
  a 7.1 is L R C LFE Lss Rss Lrs Rrs (side and rear surround pairs);
* loudness labels (:func:`loudness_labels`): what the meter reports per channel
  (``deliver loudness --json`` ``channels[].label``); the 7.1 side pair is Ls/Rs, the back pair
  Lb/Rb, as in ITU-R BS.2051 naming.

Channel weights G_i (ITU-R BS.1770-4 Table 3 / Annex 3): LFE 0; channels at 60-120 degrees azimuth
(5.1 surrounds, 7.1 side pair) 1.41 (+1.5 dB); every other channel (incl. the 7.1 back pair) 1.0.
Mono is one channel with weight 1.0 (no dual-mono +3 dB).

References: ITU-R BS.775-3 (multichannel arrangement); SMPTE ST 428-3 (D-Cinema channel
mapping); ITU-R BS.1770-4 Table 3; Microsoft WAVEFORMATEXTENSIBLE channel mask (speaker positions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from specs.errors import MediaError

__all__ = [
    "Layout",
    "LAYOUTS",
    "CHANNEL_LABELS",
    "SPEC_LAYOUT_NAMES",
    "SURROUND_WEIGHT",
    "LFE_WEIGHT",
    "FRONT_WEIGHT",
    "find_layout",
    "spec_layout",
    "ffmpeg_layout",
    "ffmpeg_positions",
    "default_layout",
    "labels_for_positions",
    "loudness_labels",
    "layout_labels",
    "layout_name",
    "channel_weights",
]

SURROUND_WEIGHT = 1.41  # BS.1770-4 Table 3: 60°..120° azimuth, +1.5 dB
LFE_WEIGHT = 0.0
FRONT_WEIGHT = 1.0


@dataclass(frozen=True)
class Layout:
    """One channel layout (see the module docstring)."""

    name: str
    aliases: tuple[str, ...]
    #: Spec labels in film order.
    labels: tuple[str, ...]
    #: ffmpeg's channel-layout name (``ffprobe channel_layout``, ``aformat``/``join`` layouts).
    ffmpeg: str
    #: ffmpeg speaker positions in ffmpeg's channel order.
    positions: tuple[str, ...]
    #: A spec may name it in ``audio.tracks[].layout``.
    spec: bool = True
    #: What a file of this many channels without a channel mask is taken to be.
    default: bool = False

    @property
    def channels(self) -> int:
        return len(self.positions)


#: The one layout table. Spec layouts first, in the order specs list them; then the other
#: layouts ffmpeg names (labels derived from their speaker positions).
LAYOUTS: tuple[Layout, ...] = (
    Layout("mono", ("1.0",), ("M",), "mono", ("FC",), default=True),
    Layout("2.0", ("stereo",), ("L", "R"), "stereo", ("FL", "FR"), default=True),
    Layout("3.0", (), ("L", "R", "C"), "3.0", ("FL", "FR", "FC")),
    Layout("4.0", (), ("L", "R", "C", "Cs"), "4.0", ("FL", "FR", "FC", "BC")),
    Layout("5.0", (), ("L", "R", "C", "Ls", "Rs"), "5.0", ("FL", "FR", "FC", "BL", "BR"), default=True),
    Layout("5.1", (), ("L", "R", "C", "LFE", "Ls", "Rs"), "5.1", ("FL", "FR", "FC", "LFE", "BL", "BR"), default=True),
    Layout("7.1", (), ("L", "R", "C", "LFE", "Lss", "Rss", "Lrs", "Rrs"), "7.1",
           ("FL", "FR", "FC", "LFE", "BL", "BR", "SL", "SR"), default=True),
    *(Layout(name, (), (), name, positions, spec=False) for name, positions in (
        ("2.1", ("FL", "FR", "LFE")),
        ("3.0(back)", ("FL", "FR", "BC")),
        ("quad", ("FL", "FR", "BL", "BR")),
        ("quad(side)", ("FL", "FR", "SL", "SR")),
        ("4.1", ("FL", "FR", "FC", "LFE", "BC")),
        ("5.0(side)", ("FL", "FR", "FC", "SL", "SR")),
        ("5.1(side)", ("FL", "FR", "FC", "LFE", "SL", "SR")),
        ("6.0", ("FL", "FR", "FC", "BC", "SL", "SR")),
        ("6.1", ("FL", "FR", "FC", "LFE", "BC", "SL", "SR")),
        ("7.0", ("FL", "FR", "FC", "BL", "BR", "SL", "SR")),
        ("7.1(wide)", ("FL", "FR", "FC", "LFE", "BL", "BR", "FLC", "FRC")),
        ("7.1(wide-side)", ("FL", "FR", "FC", "LFE", "FLC", "FRC", "SL", "SR")),
    )),
)

#: The layout words a spec may write, in table order.
SPEC_LAYOUT_NAMES: tuple[str, ...] = tuple(layout.name for layout in LAYOUTS if layout.spec)
#: Channel labels a spec track may list (ITU/SMPTE names; Lt/Rt = matrixed stereo; M = mono).
CHANNEL_LABELS = ("L", "R", "C", "LFE", "Ls", "Rs", "Lss", "Rss", "Lrs", "Rrs", "Lt", "Rt", "M", "Cs")

#: Spec label -> loudness label where they differ (7.1 side pair Lss/Rss = Ls/Rs, rear pair = Lb/Rb).
_LOUDNESS_LABEL = {"Lss": "Ls", "Rss": "Rs", "Lrs": "Lb", "Rrs": "Rb"}
#: BS.1770-4 weights by loudness label; every other label weighs FRONT_WEIGHT.
_LABEL_WEIGHTS = {"LFE": LFE_WEIGHT, "LFE2": LFE_WEIGHT, "Ls": SURROUND_WEIGHT, "Rs": SURROUND_WEIGHT}
_POSITION_LABELS = {"FL": "L", "FR": "R", "FC": "C", "LFE": "LFE", "LFE2": "LFE2", "FLC": "Lc", "FRC": "Rc",
                    "BC": "Cs"}

_BY_NAME: dict[str, Layout] = {}
for _layout in LAYOUTS:
    for _key in (_layout.name, *_layout.aliases, _layout.ffmpeg):
        _BY_NAME.setdefault(_key, _layout)
_BY_FFMPEG: dict[str, Layout] = {layout.ffmpeg: layout for layout in LAYOUTS}


def find_layout(name: str) -> Layout | None:
    """The layout called ``name`` (its name, an alias, or its ffmpeg name), or ``None``."""
    return _BY_NAME.get(name)


def spec_layout(name: str) -> Layout:
    """The layout a spec's ``audio.tracks[].layout`` word names.

    Raises:
        KeyError: not a spec layout word.
    """
    layout = _BY_NAME.get(name)
    if layout is None or not layout.spec or name not in (layout.name, *layout.aliases):
        raise KeyError(name)
    return layout


def ffmpeg_layout(name: str) -> str | None:
    """ffmpeg's channel-layout name for a spec layout word (``2.0`` -> ``stereo``), or ``None``."""
    try:
        return spec_layout(name).ffmpeg
    except KeyError:
        return None


def ffmpeg_positions(ffmpeg_name: str) -> tuple[str, ...] | None:
    """Speaker positions, in ffmpeg's channel order, of an ffmpeg channel-layout name (``None`` if unknown)."""
    layout = _BY_FFMPEG.get(ffmpeg_name)
    return layout.positions if layout is not None else None


def default_layout(channels: int) -> Layout | None:
    """The layout assumed for ``channels`` channels without a channel mask (``None`` when none is)."""
    return next((layout for layout in LAYOUTS if layout.default and layout.channels == channels), None)


def labels_for_positions(positions: Sequence[str]) -> tuple[str, ...]:
    """Spec labels for speaker positions (ffmpeg / WAVE names), in the positions' order.

    ``BL/BR`` are the surround pair (``Ls/Rs``, ±110°) in layouts without side channels (5.0/5.1
    "back" flavours, quad), because that is where 5.1 surrounds sit (ITU-R BS.775); with ``SL/SR``
    present (7.1) they are the rear pair ``Lrs/Rrs`` and ``SL/SR`` the side pair ``Lss/Rss``.
    Positions without a spec label keep a name of their own (``Lc``, ``LFE2``, ``TC`` ...).
    """
    pos = [p.upper() for p in positions]
    if pos == ["FC"]:
        return ("M",)
    has_side = "SL" in pos or "SR" in pos
    has_back = "BL" in pos or "BR" in pos
    names = {"BL": "Lrs" if has_side else "Ls", "BR": "Rrs" if has_side else "Rs",
             "SL": "Lss" if has_back else "Ls", "SR": "Rss" if has_back else "Rs"}
    return tuple(names.get(p) or _POSITION_LABELS.get(p, p) for p in pos)


def loudness_labels(labels: Sequence[str]) -> tuple[str, ...]:
    """The meter's labels for spec labels (7.1: Lss Rss Lrs Rrs -> Ls Rs Lb Rb)."""
    return tuple(_LOUDNESS_LABEL.get(label, label) for label in labels)


def layout_labels(name: str, channels: int | None = None) -> tuple[str, ...]:
    """Loudness labels of a named layout, in film order (ffmpeg order for ffmpeg-only layouts).

    Raises:
        MediaError: unknown layout, or its channel count differs from ``channels``.
    """
    layout = _BY_NAME.get(name)
    if layout is None:
        defaults = ", ".join(layout.ffmpeg for layout in LAYOUTS if layout.default)
        raise MediaError(f"unknown channel layout {name!r}; use one of {defaults} "
                         "(or an ffmpeg layout name such as 5.1(side))")
    labels = loudness_labels(layout.labels if layout.spec else labels_for_positions(layout.positions))
    if channels is not None and len(labels) != channels:
        raise MediaError(f"layout {name!r} has {len(labels)} channels but the audio has {channels}")
    return labels


def layout_name(labels: Sequence[str]) -> str:
    """The ffmpeg name of the default layout with these loudness labels (any order), else ``custom(...)``."""
    defaults = [(layout.ffmpeg, loudness_labels(layout.labels)) for layout in LAYOUTS if layout.default]
    for name, lab in defaults:
        if tuple(labels) == lab:
            return name
    for name, lab in defaults:  # same speakers, another channel order (e.g. WAVE 7.1)
        if sorted(labels) == sorted(lab):
            return name
    return "custom(" + " ".join(labels) + ")"


def channel_weights(labels: Sequence[str]) -> tuple[float, ...]:
    """BS.1770-4 channel weights G_i for loudness labels (LFE 0, Ls/Rs 1.41, everything else 1.0)."""
    return tuple(_LABEL_WEIGHTS.get(label, FRONT_WEIGHT) for label in labels)
