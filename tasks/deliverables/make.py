"""Make every deliverable of a spec from ONE decode of the married master, verify each, publish atomically.

Loudness-corrected tracks are rendered first (:func:`tasks.audio.correct.correct_loudness`, a cheap
audio-only pass) and enter the one-decode graph (:func:`tasks.deliverables.graph.deliverables_graph`)
as extra inputs. Every output is written as ``name.partial.ext``, verified against its own deliverable
(:func:`tasks.deliverables.verify.verify_deliverable`), fsynced and renamed. With a
:class:`~tasks.media.files.Provenance` each output gets a record (inputs' identity, xxh128): a rerun reuses
the deliverables whose record and hash still match and makes the others again (an existing file of other
bytes is moved aside, never overwritten), so an interrupted run resumes from its files alone.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

from pydantic import BaseModel

from specs.errors import BadInputError, MediaError, VerificationError
from specs.layouts import ffmpeg_layout
from specs.model import Deliverable, Spec
from tasks.archive.hashing import PACKAGE_FORMATS
from tasks.deliverables.graph import GraphOutput, correction_source_graph, outputs_graph
from tasks.deliverables.naming import RunFields, deliverable_path
from tasks.deliverables.shape import audio_sources, expected_duration_s, head_frames, master_frames
from tasks.deliverables.verify import verify_deliverable
from tasks.media.ffmpeg import FFmpegProgress, compile_args, run_ffmpeg
from tasks.media.files import Provenance, discard_stale_partials, partial_name, publish, reusable
from tasks.media.probe import MediaInfo, probe

__all__ = ["DeliverableResult", "TranscodeAllResult", "DeliverableSet", "transcode_all", "transcode_sets", "THUMBNAILS"]

THUMBNAILS = 6


class DeliverableResult(BaseModel):
    id: str
    kind: str
    path: str
    size: int
    duration_s: float
    wall_s: float
    reused: bool = False  # an earlier run made it and it still verifies
    checks: list[str] = []  # what verification confirmed


class TranscodeAllResult(BaseModel):
    deliverables: list[DeliverableResult]
    extras: list[str]  # poster frame and thumbnails
    wall_s: float
    ffmpeg_runs: int


def _corrected_tracks(todo: list[Deliverable], spec: Spec, master: MediaInfo, work: Path
                      ) -> dict[tuple[str, int], Path]:
    """Loudness-corrected WAVs for the audio maps that set a target: (deliverable id, map index) -> WAV."""
    from tasks.audio.correct import correct_loudness

    out: dict[tuple[str, int], Path] = {}
    for d in todo:
        srcs = audio_sources(d, spec, master)
        start, head = head_frames(d, spec, master)
        for i, amap in enumerate(d.audio):
            if amap.loudness_target_lufs is None:
                continue
            raw = work / f"{d.id}.a{i}.source.wav"
            fixed = work / f"{d.id}.a{i}.corrected.wav"
            for p in (raw, fixed):
                p.unlink(missing_ok=True)
            run_ffmpeg(["-v", "error", *compile_args(correction_source_graph(d, i, spec, master, srcs[i], head, raw))],
                       what=f"audio for loudness correction of {d.id}")
            track = spec.audio.tracks[srcs[i]]
            ceiling = amap.max_true_peak_dbtp if amap.max_true_peak_dbtp is not None else (
                track.loudness.max_true_peak_dbtp if track.loudness and track.loudness.max_true_peak_dbtp is not None
                else -1.0)
            correct_loudness(raw, fixed, target_lufs=amap.loudness_target_lufs, max_true_peak_dbtp=ceiling,
                             layout="stereo" if amap.downmix == "2.0"
                             else ffmpeg_layout(track.layout) or track.layout)
            raw.unlink(missing_ok=True)
            out[(d.id, i)] = fixed
    return out


class DeliverableSet(BaseModel):
    """What one package gets from a shared one-decode graph: its deliverables, the spec and run fields they are
    made for, the package folder and where its poster frame and thumbnails go (None: not made)."""

    deliverables: list[Deliverable]
    spec: Spec
    out_dir: str
    fields: RunFields
    extras_dir: str | None = None


def transcode_all(deliverables: list[Deliverable], spec: Spec, master: MediaInfo, out_dir: str | Path, *,
                  fields: RunFields, progress: Callable[[float, float], None] | None = None,
                  extras_dir: str | Path | None = None, thumbnails: int = THUMBNAILS,
                  verify: bool = True, provenance: Provenance | None = None) -> TranscodeAllResult:
    """Make every deliverable from one decode of ``master`` (see the module docstring).

    Args:
        deliverables: what to make (usually ``spec.deliverables``).
        spec: the spec (tracks, timing).
        master: the probed married master.
        out_dir: the package folder; names come from each deliverable's template.
        fields: title, version, recipient, date for names and burn-ins.
        progress: ``(done_s, total_s)`` while ffmpeg runs.
        extras_dir: where the poster frame and thumbnails go (None: not made).
        thumbnails: how many thumbnails, evenly over the programme.
        verify: verify each output before it gets its final name (off only for benchmarks).
        provenance: the identity of this step's inputs and the run's output folder: outputs get records
            and are reused by them. Without it an existing final file must verify and is reused.

    Raises:
        BadInputError: without ``provenance``, a deliverable's final file exists but does not verify.
        VerificationError: a new output failed verification (nothing kept under its final name).
    """
    one = DeliverableSet(deliverables=deliverables, spec=spec, out_dir=str(out_dir), fields=fields,
                         extras_dir=None if extras_dir is None else str(extras_dir))
    return transcode_sets([one], master, progress=progress, thumbnails=thumbnails, verify=verify,
                          provenances=[provenance])[0]


class _Pending(NamedTuple):
    """A set's share of the one graph: its targets, what is already done, what to make, its records."""

    targets: dict[str, Path]
    done: list[DeliverableResult]
    todo: list[Deliverable]
    each: dict[str, Provenance]
    extras: list[Path]
    extra_prov: dict[Path, Provenance]
    extras_todo: list[Path]


def _pending(s: DeliverableSet, master: MediaInfo, provenance: Provenance | None, thumbnails: int) -> _Pending:
    """What of ``s`` an earlier run already made (reused by its record, or verified without one) and what not;
    DCPs are built here, by their own pipeline."""
    spec, fields = s.spec, s.fields
    out_root = Path(s.out_dir)
    targets = {d.id: deliverable_path(d, spec, out_root, fields) for d in s.deliverables}
    done: list[DeliverableResult] = [_dcp(d, spec, master, targets[d.id], fields) for d in s.deliverables
                                     if d.kind == "dcp"]
    todo: list[Deliverable] = []
    each = {d.id: provenance.derive("deliverable", d.id, targets[d.id].name)
            for d in s.deliverables} if provenance else {}
    for d in s.deliverables:
        if d.kind == "dcp":
            continue
        final = targets[d.id]
        record = reusable(final, each[d.id], PACKAGE_FORMATS) if provenance else None
        if record is not None:
            note = record.get("note") or {}
            done.append(DeliverableResult(id=d.id, kind=d.kind, path=str(final), size=final.stat().st_size,
                                          duration_s=float(note.get("duration_s") or 0.0), wall_s=0.0, reused=True,
                                          checks=list(note.get("checks") or [])))
        elif provenance is not None:
            todo.append(d)  # missing, unrecorded or changed: made again (an existing file is kept if equal)
        elif final.exists():
            try:
                info, checks = verify_deliverable(d, spec, final, expected_duration_s(d, spec, master), master=master)
            except (VerificationError, MediaError) as exc:
                raise BadInputError(f"{final} exists from an earlier run but does not verify ({exc}); it is never "
                                    "overwritten: move it away or choose another --out") from None
            done.append(DeliverableResult(id=d.id, kind=d.kind, path=str(final), size=final.stat().st_size,
                                          duration_s=info.duration_s or 0.0, wall_s=0.0, reused=True, checks=checks))
        else:
            todo.append(d)
    extras: list[Path] = []
    extra_prov: dict[Path, Provenance] = {}
    extras_todo: list[Path] = []
    if s.extras_dir is not None and thumbnails >= 0:
        stem = f"{fields.title}_{fields.version}"
        extras = [Path(s.extras_dir) / f"{stem}_poster.jpg"] + [Path(s.extras_dir) / f"{stem}_thumb_{k + 1:02d}.jpg"
                                                                 for k in range(thumbnails)]
        if provenance is not None:  # cheap: redo the whole set unless every one is recorded and intact
            extra_prov = {p: provenance.derive("extra", p.name) for p in extras}
            extras_todo = [] if all(reusable(p, extra_prov[p], PACKAGE_FORMATS) for p in extras) else extras
        elif not all(p.exists() for p in extras):
            for p in extras:  # extras are cheap: redo the set, never one of a mixed old/new set
                if p.exists():
                    raise BadInputError(f"{p} exists but the set of thumbnails is incomplete; remove "
                                        f"{Path(s.extras_dir)} and rerun")
            extras_todo = extras
    return _Pending(targets, done, todo, each, extras, extra_prov, extras_todo)


def transcode_sets(sets: list[DeliverableSet], master: MediaInfo, *,
                   progress: Callable[[float, float], None] | None = None, thumbnails: int = THUMBNAILS,
                   verify: bool = True, provenances: list[Provenance | None] | None = None
                   ) -> list[TranscodeAllResult]:
    """Every deliverable of every set (a plan's distributors) from ONE decode of ``master``: one ffmpeg graph
    whose outputs go to each set's package, each verified and published; one result per set, in order. The
    arguments are :func:`transcode_all`'s, per set (``provenances[k]`` for ``sets[k]``)."""
    started = time.monotonic()
    v = master.primary_video
    if v is None:
        raise BadInputError(f"{master.path} has no video stream to make deliverables from")
    provs = provenances or [None] * len(sets)
    pending = [_pending(s, master, prov, thumbnails) for s, prov in zip(sets, provs, strict=True)]
    runs = 0
    if any(p.todo or p.extras_todo for p in pending):
        with tempfile.TemporaryDirectory(prefix="deliver-audio-") as tmp:
            corrected: list[dict[tuple[str, int], Path]] = []
            for k, (s, p) in enumerate(zip(sets, pending, strict=True)):
                (Path(tmp) / str(k)).mkdir()
                corrected.append(_corrected_tracks(p.todo, s.spec, master, Path(tmp) / str(k)))
            runs += sum(len(c) for c in corrected)
            outputs = [GraphOutput(d, s.spec, s.fields, p.targets[d.id],
                                   {i: w for (k, i), w in c.items() if k == d.id})
                       for s, p, c in zip(sets, pending, corrected, strict=True) for d in p.todo]
            _one_graph(outputs, [(s.spec, p.extras_todo) for s, p in zip(sets, pending, strict=True) if p.extras_todo],
                       master, progress)
            runs += 1
            failures = []
            for s, p in zip(sets, pending, strict=True):
                for d in p.todo:
                    partial = partial_name(p.targets[d.id])
                    try:
                        if verify:
                            info, checks = verify_deliverable(d, s.spec, partial,
                                                              expected_duration_s(d, s.spec, master), master=master)
                        else:
                            info, checks = probe(partial, f"deliverable {d.id}"), []
                    except VerificationError as exc:
                        partial.unlink(missing_ok=True)
                        failures.append(str(exc))
                        continue
                    final = p.targets[d.id]
                    publish(partial, final, provenance=p.each.get(d.id), formats=PACKAGE_FORMATS,
                            note={"duration_s": info.duration_s, "checks": checks})
                    p.done.append(DeliverableResult(id=d.id, kind=d.kind, path=str(final), size=final.stat().st_size,
                                                    duration_s=info.duration_s or 0.0,
                                                    wall_s=time.monotonic() - started, checks=checks))
                for x in p.extras_todo:
                    publish(partial_name(x), x, provenance=p.extra_prov.get(x), formats=PACKAGE_FORMATS)
            if failures:
                raise VerificationError(" | ".join(failures))
    if progress is not None:  # ffmpeg's last report stops short of the end (last frame's start time)
        total_s = float(Fraction(master_frames(master)) / v.frame_rate)
        progress(total_s, total_s)
    results = []
    for s, p in zip(sets, pending, strict=True):
        order = {d.id: k for k, d in enumerate(s.deliverables)}
        p.done.sort(key=lambda r: order[r.id])
        results.append(TranscodeAllResult(deliverables=p.done, extras=[str(x) for x in p.extras],
                                          wall_s=time.monotonic() - started, ffmpeg_runs=runs))
    return results


def _dcp(d: Deliverable, spec: Spec, master: MediaInfo, final: Path, fields: RunFields) -> DeliverableResult:
    """A DCP folder: JPEG 2000 frames encoded in parallel off their own decode (tasks.dcp), then verified.

    An existing DCP from an earlier run is kept if it verifies, else refused (never overwritten).
    """
    from tasks.dcp.plan import make_dcp, plan_deliverable
    from tasks.dcp.verify import verify_dcp

    started = time.monotonic()
    plan = plan_deliverable(d, spec, master, fields.title, fields.lang or "en")
    duration_s = sum(c for _s, c in plan.reels) / plan.edit_rate
    reused = final.exists()
    if reused:
        problems = verify_dcp(final).problems
        if problems:
            raise BadInputError(f"{final} exists from an earlier run but does not verify ({problems[0]}); it is "
                                "never overwritten: move it away or choose another --out")
    else:
        make_dcp(Path(master.path), plan, final, os.cpu_count() or 1,
                 work_dir=final.parent.parent / "work" / f"dcp-{d.id}")
    size = sum(p.stat().st_size for p in final.iterdir() if p.is_file())
    return DeliverableResult(id=d.id, kind=d.kind, path=str(final), size=size, duration_s=duration_s,
                             wall_s=time.monotonic() - started, reused=reused,
                             checks=["dcp: track files re-read, codestreams, XSD, PKL hashes, signatures"])


def _one_graph(outputs: list[GraphOutput], extras: list[tuple[Spec, list[Path]]], master: MediaInfo,
               progress: Callable[[float, float], None] | None) -> None:
    """Run the single ffmpeg command: every output (and extra) written under its partial name, not yet verified;
    nothing half-written survives a failure."""
    v = master.primary_video
    assert v is not None
    finals = [*(o.path for o in outputs), *(p for _s, paths in extras for p in paths)]
    for final in finals:
        final.parent.mkdir(parents=True, exist_ok=True)
        discard_stale_partials(final)  # leftovers of an interrupted run are ours to replace
    graph = outputs_graph([o._replace(path=partial_name(o.path)) for o in outputs], master,
                          [(spec, [partial_name(p) for p in paths]) for spec, paths in extras])
    total_s = float(Fraction(master_frames(master)) / v.frame_rate)
    lock, best_s = threading.Lock(), [0.0]

    def _report(done_s: float) -> None:
        # Two sources, never backwards: ffmpeg's -progress (media time written) and, while ffmpeg 5.1 stays
        # silent until every output has started (the poster frame is a third in), how far it has read
        # the master. Reading runs slightly ahead of writing (demuxer buffers), hence the 99 % ceiling.
        with lock:
            if progress is None or done_s <= best_s[0]:
                return
            best_s[0] = done_s
            progress(done_s, total_s)

    def _progress(p: FFmpegProgress) -> None:
        _report(min(p.out_time_s, total_s))

    def _read(fraction: float) -> None:
        _report(min(fraction, 0.99) * total_s)

    try:
        run_ffmpeg(compile_args(graph), progress=_progress,
                   what=f"transcode of {len(outputs)} deliverable(s) in one pass",
                   input_read=(master.path, _read) if progress is not None else None)
    except BaseException:
        for final in finals:  # nothing half-written survives, even under a partial name
            partial_name(final).unlink(missing_ok=True)
        raise
