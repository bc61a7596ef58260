"""MXF (SMPTE ST 377-1) track files: a writer for D-Cinema picture/sound (ST 429-3/-4) and a reader."""

from tasks.mxf.reader import TrackFile, read_track
from tasks.mxf.writer import TrackFileInfo, samples_per_frame, write_picture_track, write_sound_track

__all__ = ["TrackFile", "TrackFileInfo", "read_track", "samples_per_frame", "write_picture_track",
           "write_sound_track"]
