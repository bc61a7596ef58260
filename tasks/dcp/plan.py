"""Plan a DCP from a married master and a spec's ``dcp`` deliverable, then make it.

:func:`plan_dcp` decides everything before a frame is encoded and refuses (exit 2) what cannot be
made: a master rate that is not a DCP rate unless the spec allows a speed change, a sound
configuration the mix does not have, a container that cannot hold the picture, an HDR master.
:func:`make_dcp` encodes the picture (:mod:`tasks.dcp.picture`), cuts 24-bit 48 kHz sound per reel
in the SMPTE ST 428-3 channel order, wraps both in track files and writes the CPL/PKL/ASSETMAP
(:mod:`tasks.dcp.package`), then verifies the result.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from specs.errors import InfrastructureError, MediaError, OutputExistsError
from specs.layouts import spec_layout
from specs.model import DCP_FRAME_RATES, DCP_MAX_SPEED_CHANGE, DcpSpec, Deliverable, IsdcfFields, Spec
from specs.timecode import Timecode
from tasks.dcp.config import EncodeConfig, encode_config
from tasks.dcp.container import choose_container, place_picture
from tasks.dcp.picture import PicturePlan, check_colour, iter_picture, iter_picture_distributed
from tasks.deliverables.shape import head_frames
from tasks.layback import LaybackPlan
from tasks.media.ffmpeg import run_ffmpeg
from tasks.media.probe import MediaInfo, VideoStream

__all__ = ["DcpPlan", "plan_dcp", "plan_deliverable", "check_dcp_deliverables", "dcp_rate", "reel_ranges", "make_dcp",
           "sound_args", "dask_client", "FRAME_BUDGET_CORE_S", "encode_budget_s"]

#: The CPU a DCP frame may take before a run is thought hung (core-seconds: colour, JPEG 2000, wrap, verify).
#: Measured: 1.05 core-s a 2K frame of a film-grain master on a quiet machine (README, `make bench`); the
#: budget is 4x that for a machine shared with other jobs. A 4K frame has 4x the samples to code.
FRAME_BUDGET_CORE_S = {"2k": 4.0, "4k": 16.0}


@dataclass(frozen=True)
class DcpPlan:
    """Everything a DCP build needs, decided from the probed master and the spec."""

    picture: PicturePlan
    source_rate: Fraction  # the master's
    edit_rate: int  # the DCP's (= picture.fps)
    sound: str  # "5.1" | "7.1" (specs.layouts names, channels in ST 428-3 order)
    audio_stream: int  # index among the master's audio streams
    reels: list[tuple[int, int]]  # (first frame, frame count)
    title: str
    content_kind: str = "FTR"
    isdcf: IsdcfFields = field(default_factory=IsdcfFields)
    language: str = "en"
    #: Composition markers beyond FFOC/LFOC (FFEC, FFMC) at composition frames (ST 429-7 Table 2).
    markers: dict[str, int] = field(default_factory=dict)
    #: ST 429-16 composition metadata the spec sets (ReleaseTerritory, Luminance, Distributor, Chain).
    release_territory: str = "001"
    luminance_fl: float = 14.0
    distributor: str | None = None
    chain: str | None = None

    @property
    def speed_changed(self) -> bool:
        return self.source_rate != self.edit_rate


def dcp_rate(master_rate: Fraction, spec: DcpSpec) -> int:
    """The DCP frame rate for ``master_rate``; refuses a speed change the spec did not allow.

    A DCP plays whole-number rates only (SMPTE ST 429-2 §6.1: 24, 25, 30, 48, 50, 60). A 23.976 master
    shown at 24 runs 0.1 % fast and its sound is resampled with it: that is the spec's decision.
    """
    if spec.frame_rate is not None:
        target = spec.frame_rate
    elif master_rate.denominator == 1 and int(master_rate) in DCP_FRAME_RATES:
        target = int(master_rate)
    else:
        target = min(DCP_FRAME_RATES, key=lambda r: abs(r - master_rate))
    if master_rate == target:
        return target
    change = abs(Fraction(target) / master_rate - 1)
    rate_text = f"{float(master_rate):.3f}".rstrip("0").rstrip(".")
    if not spec.speed_change:
        raise MediaError(f"the master runs at {rate_text} fps and a DCP at {target}: that needs a speed change "
                         f"({float(change) * 100:.1f} %) the spec does not ask for. Set dcp.speed_change: true, "
                         f"or give a master at {', '.join(map(str, DCP_FRAME_RATES))} fps")
    if change > DCP_MAX_SPEED_CHANGE:
        raise MediaError(f"playing the {rate_text} fps master at {target} fps changes its speed by "
                         f"{float(change) * 100:.1f} %, more than the {float(DCP_MAX_SPEED_CHANGE) * 100:.1f} % a "
                         "speed change may: convert the master's frame rate first")
    return target


def reel_ranges(frame_count: int, reels: int, edit_rate: int) -> list[tuple[int, int]]:
    """``reels`` reels of about equal length, each at least one second (SMPTE ST 429-2 §8)."""
    if frame_count < edit_rate:
        raise MediaError(f"the master has {frame_count} frames: a DCP reel lasts at least 1 s ({edit_rate} frames)")
    reels = max(1, min(reels, frame_count // edit_rate))
    bounds = [round(frame_count * i / reels) for i in range(reels + 1)]
    return [(bounds[i], bounds[i + 1] - bounds[i]) for i in range(reels)]


def credit_markers(spec: DcpSpec, start: Timecode, first_frame: int, frames: int) -> dict[str, int]:
    """FFEC/FFMC (ST 429-7 Table 2; RDD 52 asks for them in a feature) from the spec's master timecodes, as
    composition frames. A timecode outside the DCP's programme is refused (MediaError, exit 2)."""
    markers = {}
    for label, text in (("FFEC", spec.ffec_timecode), ("FFMC", spec.ffmc_timecode)):
        if not text:
            continue
        frame = Timecode.parse(text, start.rate, drop_frame=start.drop_frame).frames - start.frames - first_frame
        if not 0 <= frame < frames:
            first = Timecode(start.frames + first_frame, start.rate, drop_frame=start.drop_frame)
            last = Timecode(start.frames + first_frame + frames - 1, start.rate, drop_frame=start.drop_frame)
            raise MediaError(f"dcp.{label.lower()}_timecode {text} is outside the DCP's programme ({first} to "
                             f"{last}): give a timecode of the master inside it")
        markers[label] = frame
    return markers


def plan_dcp(video: VideoStream, spec: DcpSpec, *, audio_channels: int, audio_stream: int, title: str,
             source: str, language: str = "en", first_frame: int = 0, start: Timecode | None = None) -> DcpPlan:
    """Decide the DCP; raises MediaError (exit 2) on anything that cannot be made, before any encode.

    ``first_frame``: the master's frame that becomes the DCP's first (the FFOA when the head is dropped);
    ``start``: the master's start timecode (the credits markers are timecodes of the master).
    """
    if video.scan == "interlaced":
        raise MediaError(f"{source} is interlaced: a DCP is progressive; deinterlace the master first")
    check_colour(video.color_primaries, video.color_transfer)
    rate = dcp_rate(video.frame_rate, spec)
    if spec.resolution == "4k" and rate != 24:
        # SMPTE RDD 52 (Bv2.1) / DCI DCSS §3.1.3.2: a 4K picture plays at 24 fps only.
        raise MediaError(f"a 4K DCP plays at 24 fps only; this one would run at {rate} fps. Give a 24 fps "
                         "master (or set dcp.frame_rate: 24 with speed_change: true), or ask for resolution: 2k")
    container = choose_container(video.width, video.height, video.sample_aspect_ratio, spec.resolution, spec.fit)
    placement = place_picture(video.width, video.height, video.sample_aspect_ratio, container,
                              scale=spec.scale == "fit")
    frames = video.frame_count or (round(Fraction(video.duration_s) * video.frame_rate) if video.duration_s else 0)
    want = spec_layout(spec.sound).channels
    if audio_channels != want:
        raise MediaError(f"a {spec.sound} DCP needs a {want}-channel mix; its sound in {source} has "
                         f"{audio_channels} channel(s). Give a {spec.sound} mix or set dcp.sound")
    picture = PicturePlan(placement, rate, frames, primaries=video.color_primaries or "bt709",
                          transfer=video.color_transfer or "bt709", matrix=video.color_matrix or "bt709",
                          range="pc" if video.color_range == "pc" else "tv",
                          is_rgb=(video.pix_fmt or "").startswith(("rgb", "gbr", "bgr")),
                          master_rate=video.frame_rate if video.frame_rate != rate else None)
    markers = credit_markers(spec, start or Timecode(0, video.frame_rate), first_frame, frames - first_frame)
    return DcpPlan(picture=picture, source_rate=video.frame_rate, edit_rate=rate, sound=spec.sound,
                   audio_stream=audio_stream, title=title,
                   reels=[(first_frame + s, c) for s, c in reel_ranges(frames - first_frame, spec.reels, rate)],
                   content_kind=spec.content_kind.upper(), isdcf=spec.isdcf, language=language, markers=markers,
                   release_territory=spec.territory_code() or "001", luminance_fl=spec.luminance_fl,
                   distributor=spec.distributor, chain=spec.chain)


def _track_index(d: Deliverable, spec: Spec) -> int:
    track_id = d.audio[0].from_track
    return next(i for i, t in enumerate(spec.audio.tracks) if t.id == track_id)


def plan_deliverable(d: Deliverable, spec: Spec, master: MediaInfo, title: str, language: str = "en") -> DcpPlan:
    """The plan of a spec's ``dcp`` deliverable made from the married master (its tracks in spec order)."""
    v = master.primary_video
    if v is None or d.dcp is None:
        raise MediaError(f"{master.path} has no picture to make DCP {d.id} from")
    index = _track_index(d, spec)
    if index >= len(master.audio):
        raise MediaError(f"{master.path} has {len(master.audio)} audio track(s); DCP {d.id} takes track {index + 1}")
    start, first_frame = head_frames(d, spec, master)
    return plan_dcp(v, d.dcp, audio_channels=master.audio[index].channels, audio_stream=index, title=title,
                    source=master.path, language=language, first_frame=first_frame, start=start)


def encode_budget_s(deliverables: list[Deliverable], master: MediaInfo, workers: int | None = None) -> float:
    """Wall seconds the ``dcp`` deliverables among ``deliverables`` may take on ``workers`` local processes
    (default this machine's cores: a Dask cluster only adds workers): the master's frames times the
    :data:`FRAME_BUDGET_CORE_S` of each DCP's resolution. The master's frame count bounds the DCP's (its
    leader is dropped); 0 when there is no DCP or no frame count or duration to scale by."""
    v = master.primary_video
    dcps = [d.dcp for d in deliverables if d.kind == "dcp" and d.dcp is not None]
    if v is None or not dcps:
        return 0.0
    duration_s = v.duration_s or master.duration_s
    frames = v.frame_count or (round(duration_s * float(v.frame_rate)) if duration_s else 0)
    cores = workers or os.cpu_count() or 1
    return sum(frames * FRAME_BUDGET_CORE_S[dcp.resolution] for dcp in dcps) / cores


def check_dcp_deliverables(spec: Spec, picture: MediaInfo, layback: LaybackPlan, title: str) -> list[DcpPlan]:
    """Every DCP of the spec planned from the picture master and the layback plan, before any work.

    The run's bad-input refusals (exit 2): rate, container, colour, sound configuration.
    """
    v = picture.primary_video
    plans = []
    for d in spec.deliverables:
        if d.kind != "dcp" or d.dcp is None or v is None:
            continue
        track = layback.tracks[_track_index(d, spec)]
        start, first_frame = head_frames(d, spec, picture)
        plans.append(plan_dcp(v, d.dcp, audio_channels=track.channels, audio_stream=_track_index(d, spec),
                              title=title, source=picture.path, first_frame=first_frame, start=start))
    return plans


def sound_args(master: Path, plan: DcpPlan, start: int, count: int, out: Path) -> list[str]:
    """ffmpeg arguments for one reel's sound: 24-bit 48 kHz WAV, exactly ``count`` frames long.

    Channels keep the married master's order, which is the spec layout's (L R C LFE Ls Rs ...), the
    SMPTE ST 428-3 / ST 429-2 order. A speed change plays the samples at the DCP rate (pitch follows,
    as in a film transfer) and resamples to 48 kHz.
    """
    samples_per_frame = Fraction(48000, plan.edit_rate)
    first = int(start * samples_per_frame)
    total = int(count * samples_per_frame)
    chain = ["aresample=48000"]
    if plan.speed_changed:
        speed = Fraction(plan.edit_rate) / plan.source_rate
        chain = [f"asetrate={round(48000 * speed)}", "aresample=48000"]
    chain += [f"atrim=start_sample={first}:end_sample={first + total}", "asetpts=PTS-STARTPTS",
              f"apad=whole_len={total}"]
    return ["-i", str(master), "-map", f"0:a:{plan.audio_stream}", "-af", ",".join(chain),
            "-c:a", "pcm_s24le", "-ar", "48000", "-rf64", "auto", "-f", "wav", str(out)]


def dask_client(encode: EncodeConfig, stack: contextlib.ExitStack) -> Any:
    """A Dask client for the picture encode, or None to encode on this machine's processes.

    ``local``: a LocalCluster of single-threaded worker processes (Grok runs one thread a frame);
    an address: that scheduler's workers. Closed with ``stack``.
    """
    if encode.dask_address is None:
        return None
    from distributed import Client, LocalCluster

    try:
        if encode.dask_address == "local":
            cluster = stack.enter_context(LocalCluster(n_workers=encode.workers or os.cpu_count() or 1,
                                                       threads_per_worker=1, processes=True,
                                                       dashboard_address=None))
            return stack.enter_context(Client(cluster))
        return stack.enter_context(Client(encode.dask_address, timeout=30))
    except (OSError, TimeoutError) as exc:
        raise InfrastructureError(f"the DCP encode's Dask scheduler {encode.dask_address} is unreachable: "
                                  f"{exc}") from None


def _frame_bytes(paths: Iterator[Path]) -> Iterator[bytes]:
    """Each encoded frame's bytes, deleting the work file once read (a feature's frames never pile up)."""
    for path in paths:
        data = path.read_bytes()
        path.unlink()
        yield data


def make_dcp(married_master: Path, plan: DcpPlan, out_dir: Path, workers: int, *,
             work_dir: Path | None = None, signer_dir: Path | None = None) -> Path:
    """Encode, wrap, package and verify the DCP; it appears as ``out_dir`` only once verified.

    The DCP is built in ``out_dir.partial`` (track files, then CPL/PKL/ASSETMAP, which name files
    relative to the folder) and renamed into place after our verification passes.

    Raises:
        OutputExistsError: ``out_dir`` exists (a DCP is never overwritten).
        VerificationError: our verification of the written DCP found a problem (nothing is kept).
    """
    # The track-file writer, packaging, signing and verification are tasks.mxf (ST 429-3/-4 track files)
    # and tasks.dcp.package / sign / verify (ST 429-7/-8/-9 XML, ST 430-2 signing).
    from tasks.dcp.naming import DcpNameFields
    from tasks.dcp.package import CompositionMetadata, write_dcp
    from tasks.dcp.sign import ensure_signer
    from tasks.dcp.verify import raise_if_failed, scan_track, verify_dcp
    from tasks.mxf.writer import write_picture_track, write_sound_track

    out_dir = Path(out_dir)
    if out_dir.exists():
        raise OutputExistsError(f"{out_dir} exists; a DCP is never overwritten: move it away or choose another --out")
    building = out_dir.with_name(out_dir.name + ".partial")
    work = Path(work_dir) if work_dir else out_dir.with_name(out_dir.name + ".partial-work")
    shutil.rmtree(building, ignore_errors=True)  # a crashed run's leftovers: never published
    building.mkdir(parents=True)
    work.mkdir(parents=True, exist_ok=True)
    c = plan.picture.placement.container
    reels = []
    encode = encode_config()
    picture_plan = replace(plan.picture, max_dropped_bits=encode.max_dropped_bits)
    try:
        with contextlib.ExitStack() as stack:
            client = dask_client(encode, stack)
            for number, (start, count) in enumerate(plan.reels, start=1):
                if client is None:
                    frames = _frame_bytes(iter_picture(married_master, picture_plan, encode.workers or workers,
                                                       work / "j2c", start, count))
                else:
                    frames = iter_picture_distributed(married_master, picture_plan, client, start, count,
                                                      encode.chunk_frames)
                picture = write_picture_track(frames, building / f"j2c_reel{number}.mxf",
                                              Fraction(plan.edit_rate), c.width, c.height)
                wav = work / f"sound_reel{number}.wav"
                run_ffmpeg(["-y", *sound_args(married_master, plan, start, count, wav)], what="DCP sound")
                sound = write_sound_track(wav, building / f"pcm_reel{number}.mxf", Fraction(plan.edit_rate),
                                          plan.sound, language=plan.language)
                wav.unlink()
                reels.append((picture, sound))
        fields = DcpNameFields(title=plan.title, width=c.width, height=c.height, layout=plan.sound,
                               edit_rate=Fraction(plan.edit_rate), content_kind=plan.content_kind,
                               version=plan.isdcf.version, audio_language=plan.isdcf.audio_language,
                               subtitle_language=plan.isdcf.subtitle_language, territory=plan.isdcf.territory,
                               rating=plan.isdcf.rating, studio=plan.isdcf.studio, facility=plan.isdcf.facility,
                               date=dt.date.today(), package_type=plan.isdcf.package_type)
        placement = plan.picture.placement
        metadata = CompositionMetadata(release_territory=plan.release_territory, luminance_fl=plan.luminance_fl,
                                       distributor=plan.distributor, chain=plan.chain, facility=plan.isdcf.facility,
                                       title_language=plan.language)
        # Each track file is read once after writing: the scan hashes it for the PKL (ST 429-8 §6.3) and checks
        # its frames; verification takes the scan rather than reading the file again (tasks.dcp.verify).
        scans = {t.path: scan_track(t.path) for reel in reels for t in reel}
        write_dcp(building, fields, reels, signer=ensure_signer(signer_dir), markers=plan.markers,
                  metadata=metadata, active_area=(placement.active_width, placement.active_height),
                  track_hashes={p: scan.sha1 for p, scan in scans.items()})
        raise_if_failed(verify_dcp(building, scans=scans))
        os.rename(building, out_dir)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out_dir
