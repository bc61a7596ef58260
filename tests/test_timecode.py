from fractions import Fraction

import pytest

from specs.errors import BadInputError
from specs.timecode import Timecode, parse_frame_rate

NTSC30 = Fraction(30000, 1001)


@pytest.mark.parametrize("text,rate", [("24000/1001", Fraction(24000, 1001)), ("23.976", Fraction(24000, 1001)),
                                       ("29.97", NTSC30), ("25", Fraction(25)), ("59.94", Fraction(60000, 1001)),
                                       ("50", Fraction(50))])
def test_parse_frame_rate_is_exact_and_snaps_ntsc_decimals(text, rate):
    assert parse_frame_rate(text) == rate


def test_parse_frame_rate_rejects_garbage():
    with pytest.raises(BadInputError, match="not a number"):
        parse_frame_rate("fast")


def test_ndf_round_trip_at_25():
    tc = Timecode.parse("01:00:00:00", Fraction(25))
    assert tc.frames == 90000
    assert str(tc + 37) == "01:00:01:12"
    assert tc.seconds == 3600


def test_drop_frame_skips_frames_at_minute_boundaries():
    tc = Timecode.parse("00:00:59;29", NTSC30)
    assert str(tc + 1) == "00:01:00;02"  # ;00 and ;01 do not exist
    ten = Timecode.parse("00:10:00;00", NTSC30)
    assert ten.frames == 17982  # 10 minutes of 29.97 DF
    assert str(Timecode(17981, NTSC30, True)) == "00:09:59;29"


def test_drop_frame_one_hour_is_107892_frames():
    assert Timecode.parse("01:00:00;00", NTSC30).frames == 107892


@pytest.mark.parametrize("frames", [0, 1, 1799, 1800, 1801, 17981, 17982, 17983, 107891, 107892, 2589407])
def test_drop_frame_format_parse_round_trip(frames):
    tc = Timecode(frames, NTSC30, True)
    assert Timecode.parse(str(tc), NTSC30).frames == frames


def test_invalid_drop_frame_label_is_rejected():
    with pytest.raises(BadInputError, match="does not exist in drop-frame"):
        Timecode.parse("00:01:00;00", NTSC30)


def test_drop_frame_needs_ntsc_rate():
    with pytest.raises(BadInputError, match="30000/1001"):
        Timecode(0, Fraction(25), True)


def test_malformed_timecode():
    with pytest.raises(BadInputError, match="HH:MM:SS:FF"):
        Timecode.parse("1:00:00", Fraction(25))
    with pytest.raises(BadInputError, match="out of range"):
        Timecode.parse("00:00:00:25", Fraction(25))


@pytest.mark.parametrize("text,rate", [("23.98", Fraction(24000, 1001)), ("47.95", Fraction(48000, 1001)),
                                       ("119.88", Fraction(120000, 1001))])
def test_two_decimal_ntsc_spellings_snap(text, rate):
    assert parse_frame_rate(text) == rate


def test_non_standard_decimal_rate_is_refused():
    with pytest.raises(BadInputError, match="not a standard rate"):
        parse_frame_rate("12.5")
