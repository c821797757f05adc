"""The studio's files: uploads checked as `prepare` checks a file, each job's folder, the caps
on what is kept (`Shelf`), and what the page gets of each variation written."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections import OrderedDict
from pathlib import Path

from lstmusic.common.errors import BadFile, UserError
from lstmusic.music import measure, midi_io
from lstmusic.studio.requests import LIMITS, ModelEntry, Request

MAX_UPLOAD_BYTES = 2 * 1024 * 1024  # a long piano MIDI file is well under 200 KB
MAX_JOBS_KEPT = 200  # older jobs' files are deleted so a long session cannot fill the disk
# ... and by size: WAVs are big (one 64-bar, 4-variation request at 30 BPM is ~340 MB), so the
# oldest finished jobs go while the files kept pass this; the newest finished one always stays.
# 1 GiB holds a few of the longest requests, or hundreds of usual 16-bar ones.
MAX_STUDIO_BYTES = 1 << 30
MAX_DROPPED_IDS = 1000  # deleted jobs remembered, so that the page is told why one is gone
KINDS = {"mid": "audio/midi", "wav": "audio/wav", "png": "image/png", "svg": "image/svg+xml",
         "musicxml": "application/vnd.recordare.musicxml+xml", "timemap": "application/json"}


def check_upload(folder: Path, data: bytes, name: str, role: str = "prime") -> Path:
    """An uploaded prime or melody, checked as `prepare` checks a file, saved in `folder`; a
    melody sets the piece's length, so it is held to the studio's bars."""
    if not data:
        raise UserError(f"{name}: the file is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise UserError(f"{name}: {len(data) / 2**20:.1f} MB is over the "
                        f"{MAX_UPLOAD_BYTES >> 20} MB limit for a prime file")
    if not data.startswith(b"MThd"):
        raise UserError(f"{name}: not a MIDI file (no MThd header)")
    path = folder / "prime.mid"
    path.write_bytes(data)
    try:
        score = midi_io.load(path)  # the same bounded reader as `prepare`
    except BadFile as exc:
        raise UserError(f"{name}: {exc}") from None
    if score.note_num() == 0:
        raise UserError(f"{name}: no notes to continue")
    if role == "melody" and (bars := measure.bar_at(score, max(int(score.end()) - 1, 0))) \
            > LIMITS["bars"].hi:
        raise UserError(f"{name}: a melody of {bars:,} bars is over the studio's "
                        f"{LIMITS['bars'].hi:.0f}-bar limit")
    return path


class Shelf:
    """The studio's files: one temporary folder per server with a folder per job, the oldest
    finished jobs' files deleted past MAX_JOBS_KEPT jobs or MAX_STUDIO_BYTES, and the ids of
    deleted jobs remembered, so that the page is told why one is gone. Not thread-safe: the
    studio calls it with its lock held."""

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="lstmusic-studio-"))
        self._dropped: OrderedDict[str, None] = OrderedDict()

    def new_folder(self) -> Path:
        folder = self.folder / secrets.token_hex(8)
        folder.mkdir()
        return folder

    def forget_old(self, jobs: OrderedDict) -> None:
        """Drop the oldest finished jobs of `jobs` (id -> job) and their files while more
        than MAX_JOBS_KEPT are kept or their files pass MAX_STUDIO_BYTES; the newest
        finished job, the one a user is about to hear, always stays."""
        finished = [j for j in jobs.values() if j.state in ("done", "error")]
        total = sum(j.bytes for j in finished)
        for oldest in finished[:-1]:
            if len(jobs) <= MAX_JOBS_KEPT and total <= MAX_STUDIO_BYTES:
                break
            del jobs[oldest.id]
            total -= oldest.bytes
            self._dropped[oldest.id] = None
            shutil.rmtree(oldest.folder, ignore_errors=True)
        while len(self._dropped) > MAX_DROPPED_IDS:
            self._dropped.popitem(last=False)

    def missing(self, job_id: str) -> str:
        """Why there is no job `job_id`: deleted to keep the caps, or never here (a restart)."""
        return (f"this request's files were deleted ({keeps()})" if job_id in self._dropped
                else "no such job (the studio was restarted?)")

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def variation_file(job, index: int, kind: str) -> Path | None:
    """Where a finished job's variation `index` has its file of `kind` (`svg-K`: page K of
    its score); None for a job, an index or a kind that is not there (nothing a user sends
    becomes a path: a page is a number checked against the page cap)."""
    if job is None or job.state != "done" or not 1 <= index <= len(job.results):
        return None
    page = page_of(kind)
    if page:
        return job.folder / f"variation-{index}-{page}.svg"
    return job.folder / f"variation-{index}.{kind}" if kind in KINDS else None


def page_of(kind: str) -> int:
    """K of a kind `svg-K` (2 <= K <= the page cap of a score), else 0."""
    from lstmusic.output.sheet import MAX_PAGES

    head, sep, tail = kind.partition("-")
    if head != "svg" or not sep or not tail.isascii() or not tail.isdigit():
        return 0
    return int(tail) if 2 <= int(tail) <= MAX_PAGES else 0


def media_type(kind: str) -> str:
    return KINDS["svg"] if page_of(kind) else KINDS[kind]


def copy_redo(job, index: int, to: Path) -> None:
    """A copy of the piece whose bars are redone: the earlier job's files may be deleted
    before the new job runs."""
    try:
        shutil.copyfile(job.folder / f"variation-{index}.mid", to)
    except FileNotFoundError:  # deleted by the caps since it was looked up
        raise UserError(f"the piece to redo is not here any more ({keeps()})") from None


def places(job, pieces, cfg, model_name: str, audio: bool) -> list:
    """Where each variation of a job is written, and the title its piano roll carries."""
    from lstmusic.output.writeout import Target, piece_title

    return [Target(job.folder / f"variation-{i}.mid",
                   job.folder / f"variation-{i}.wav" if audio else None,
                   job.folder / f"variation-{i}.png",
                   piece_title(f"{model_name}: variation {i}", piece.report.bars, cfg),
                   job.folder / f"variation-{i}")
            for i, piece in enumerate(pieces, 1)]


def keeps() -> str:
    return (f"the studio keeps the last {MAX_JOBS_KEPT} requests and at most "
            f"{MAX_STUDIO_BYTES / 2**20:.0f} MB of their files")


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def result(job, index: int, report, entry: ModelEntry, files) -> dict:
    """What the page gets of one variation: its files by URL, figures and reproduce line."""
    req, audio, sheet = job.request, files.wav is not None, bool(files.score)
    base = f"/api/jobs/{job.id}/{index}"
    figures = report.to_json()
    keep = ("bars", "notes", "distinct_pitches", "seconds", "resampled_bars", "repairs",
            "loop", "redo", "form")
    return {"index": index, "midi": f"{base}/mid", "wav": f"{base}/wav" if audio else None,
            "no_audio": _no_audio(audio, report, files),
            "png": f"{base}/png", "download_name": f"lstmusic-{req.cfg.seed}-{index}.mid",
            "svg": f"{base}/svg" if sheet else None,
            # every page of the score: svg, svg-2, svg-3...
            "svg_pages": [f"{base}/svg" + (f"-{k}" if k > 1 else "") for k in range(
                1, sum(p.suffix == ".svg" for p in files.score) + 1)],
            "musicxml": f"{base}/musicxml" if sheet else None,
            "timemap": f"{base}/timemap" if sheet else None,
            "no_score": files.no_score.rsplit(": ", 1)[-1] if files.no_score else "",
            "seed": req.cfg.seed, "command": reproduce_command(req, entry, index),
            "figures": {k: figures[k] for k in keep if k in figures}}


def _no_audio(audio: bool, report, files) -> str:
    """Why a variation has no player: its WAV failed (the synth's one line), or it is silent."""
    if audio:
        return ""
    if files.no_wav:
        return files.no_wav.rsplit(": ", 1)[-1]
    return "" if report.notes else "a silent piece: no audio"


def reproduce_command(req: Request, entry: ModelEntry, index: int) -> str:
    """The `lstmusic generate` line that writes this very piece again (same seed, same batch)."""
    from lstmusic.output.writeout import reproduce_command as line

    text = line(req.cfg, entry.run_dir)
    return text + (f"  # this is song-{index}.mid" if req.cfg.n > 1 else "")
