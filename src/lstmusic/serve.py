"""The studio: compose, listen and look in the browser (`lstmusic serve`).

A small FastAPI app and one static page (plain HTML, CSS and JavaScript shipped in
`lstmusic/web`, nothing fetched from a CDN, so it works with no internet at all). FastAPI
rather than Gradio: the page needs a queue shared by every tab, per-request progress and
files that are served only by id, and a hand-written page of a few hundred lines gives
exactly that with two small dependencies (Gradio brings a large front end that fetches fonts
from the internet unless told otherwise).

The flow of one click: the page sends its settings (and an optional prime MIDI file as the
request body) to POST /api/generate; `Studio.submit` checks every value against `LIMITS`
and the upload with `midi_io.load`, the same bounded reader `prepare` uses, then queues a
`Job`. One worker thread takes jobs in order (the model uses the CPU fully; running two at
once would only make both slower), composes with `Composer.generate`, writes each variation's
MIDI, WAV (see render.find_synth) and piano-roll PNG into the job's own folder under one temporary
folder per server, and the page polls GET /api/jobs/ID for progress and results. Files are
served by job id, variation number and kind, looked up in the job's own table: nothing a
user sends ever becomes a path. The temporary folder is removed when the server stops; while
it runs, the oldest finished jobs' files are deleted past MAX_JOBS_KEPT jobs or
MAX_STUDIO_BYTES, and the page is told why when it asks for one of them.
"""

from __future__ import annotations

import math
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import Request as HttpRequest  # a module global: FastAPI reads the annotation

from lstmusic import checkpoint, metrics, midi_io
from lstmusic.config import GenerateConfig
from lstmusic.errors import BadFile, UserError
from lstmusic.steer import parse_chords, parse_key

MAX_UPLOAD_BYTES = 2 * 1024 * 1024  # a long piano MIDI file is well under 200 KB
MAX_QUEUED = 16  # more waiting requests than this are refused: one tab cannot block all
MAX_JOBS_KEPT = 200  # older jobs' files are deleted so a long session cannot fill the disk
# ... and by size: WAVs are big (one 64-bar, 4-variation request at 30 BPM is ~340 MB), so the
# oldest finished jobs go while the files kept pass this; the newest finished one always stays.
# 1 GiB holds a few of the longest requests, or hundreds of usual 16-bar ones.
MAX_STUDIO_BYTES = 1 << 30
MAX_DROPPED_IDS = 1000  # deleted jobs remembered, so that the page is told why one is gone
POLL_HINT_S = 0.1  # how often the page asks for progress: small JSON, loopback
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
KINDS = {"mid": "audio/midi", "wav": "audio/wav", "png": "image/png", "svg": "image/svg+xml",
         "musicxml": "application/vnd.recordare.musicxml+xml", "timemap": "application/json"}


@dataclass(frozen=True)
class Limit:
    lo: float
    hi: float
    default: float
    integer: bool = True


FIELDS = {"variations": "n"}  # page name -> GenerateConfig field, where they differ


def _limit(name: str, lo: float, hi: float, integer: bool = True) -> Limit:
    """A page field's range; its default is GenerateConfig's, so that a click and a plain
    `lstmusic generate` compose alike."""
    return Limit(lo, hi, getattr(GenerateConfig, FIELDS.get(name, name)), integer)


# What the page may ask for, by the page's names: the studio's own caps within
# GenerateConfig's ranges, so that one click stays a few seconds of work. Anything outside is
# refused with a message naming the range.
LIMITS = {
    "bars": _limit("bars", 1, 64),
    "variations": _limit("variations", 1, 4),
    "temperature": _limit("temperature", 0.1, 2.0, integer=False),
    "top_p": _limit("top_p", 0.1, 1.0, integer=False),
    "seed": _limit("seed", 0, 2**31 - 1),
    "tempo": _limit("tempo", 0, 300, integer=False),  # 0: the model's tempo
    "program": _limit("program", 0, 127),
    "prime_bars": _limit("prime_bars", 1, 16),
    "key_strength": _limit("key_strength", 0, 1, integer=False),
}
LABELS = {"top_p": "top-p", "prime_bars": "prime bars", "key_strength": "key strength"}


class Busy(UserError):
    """The queue is full (HTTP 429)."""


class Stopping(Exception):
    """The server is stopping: the running job gives up."""


@dataclass(frozen=True)
class ModelEntry:
    """A model the studio offers: the page knows it by `id`, never by its folder."""

    id: str
    name: str
    run_dir: Path | None  # None: the model bundled with lstmusic
    tokenizer: str
    styles: tuple[str, ...]
    default_style: str  # composed when none is asked for
    val_nll: float | None
    val_perplexity: float | None
    unigram_nll: float | None
    step: int | None

    def public(self) -> dict:
        info = asdict(self)
        info["run_dir"] = str(self.run_dir) if self.run_dir else "bundled with lstmusic"
        return info


def find_models(run_dirs: list[str] = (), runs: str | None = None) -> list[ModelEntry]:
    """Each RUN_DIR given, the bundled model and every run folder found under `runs`, in
    that order (the first is the one a click composes with unless told otherwise)."""
    from lstmusic.run import bundled_run_dir

    folders: list[Path | None] = []  # the runs named first: the page selects the first
    for given in run_dirs:
        path = Path(given)
        checkpoint.refuse_pickle(path)
        if not (path / checkpoint.CONFIG).is_file() or not (path / checkpoint.WEIGHTS).is_file():
            raise UserError(f"{path}: not a run folder (no {checkpoint.CONFIG} and "
                            f"{checkpoint.WEIGHTS})")
        folders.append(path)
    if (bundled_run_dir() / checkpoint.CONFIG).exists():
        folders.append(None)
    found = []
    if runs:
        root = Path(runs)
        if not root.is_dir():
            raise UserError(f"--runs {root}: no such folder")
        for config in sorted(root.rglob(checkpoint.CONFIG)):
            # `last/` holds a run's resumable state, not a model to offer.
            if (config.parent / checkpoint.WEIGHTS).is_file() and config.parent.name != "last":
                found.append(config.parent)
    entries, seen = [], set()
    for folder in folders + found:
        key = folder.resolve() if folder else None
        if key in seen:
            continue
        seen.add(key)
        try:
            entries.append(_entry(f"m{len(entries)}", folder))
        except UserError as exc:
            if folder not in found:
                raise  # a RUN_DIR given by name must work
            print(f"lstmusic serve: skipping {exc}", file=sys.stderr)
    if not entries:
        raise UserError("no model to serve: this install has no bundled model; give a RUN_DIR")
    return entries


def _entry(model_id: str, folder: Path | None) -> ModelEntry:
    from lstmusic.run import read_run

    run = read_run(folder)
    return ModelEntry(
        id=model_id, name=folder.name if folder else "bundled", run_dir=folder,
        tokenizer=run.tokenizer_name, styles=run.styles,
        default_style=run.styles[run.style_index("")] if run.styles else "",
        val_nll=_rounded(run.val_loss),
        val_perplexity=_rounded(run.metrics.get("val_perplexity")),
        unigram_nll=_rounded(run.unigram_nll), step=run.step)


def _rounded(value) -> float | None:
    return None if value is None else round(float(value), 3)


# ---------------------------------------------------------------- requests and jobs
ROLES = ("prime", "melody")  # what an uploaded file is: a piece to continue, or to harmonise


@dataclass(frozen=True)
class Request:
    """One click, checked: which model and the generation settings. The file names in `cfg`
    (prime, melody, redo) are the names the user knows; the job's own copies replace them
    when it runs, so no name a user sends ever becomes a path."""

    model: str
    cfg: GenerateConfig
    upload: str = ""  # the role of the uploaded file: one of ROLES, or "" for none
    redo_from: tuple[str, int] | None = None  # (job id, variation) whose bars are redone

    @property
    def prime_name(self) -> str:
        return self.cfg.prime or self.cfg.melody

    def public(self) -> dict:
        """The settings as the page shows them."""
        return {**asdict(self.cfg), "model": self.model, "variations": self.cfg.n,
                "prime_name": self.prime_name}


def parse_request(params: dict, models: dict[str, ModelEntry], has_prime: bool,
                  redo_name: str = "") -> Request:
    """A Request from the page's query parameters; UserError names the first bad value.
    `redo_name`: the download name of the variation whose bars are to be redone."""
    values = {FIELDS.get(name, name): _number(params, name, limit)
              for name, limit in LIMITS.items()}
    if values["tempo"] and values["tempo"] < 30:
        raise UserError(f"tempo must be 0 (the model's) or 30 to 300 BPM, not {values['tempo']:g}")
    model = str(params.get("model") or next(iter(models)))
    if model not in models:
        raise UserError(f"unknown model {model[:40]!r}")
    style = str(params.get("style", "")).strip()
    if style and style not in models[model].styles:
        raise UserError(f"model {models[model].name} has no style {style[:40]!r}; it knows "
                        f"{', '.join(models[model].styles) or 'none'}")
    loop = str(params.get("loop", "")).lower() in ("1", "true", "on", "yes")
    if loop and has_prime:
        raise UserError("loop mode makes a piece from scratch; leave out the prime file")
    name = Path(str(params.get("prime_name") or "prime.mid")).name[:80] if has_prime else ""
    role = str(params.get("upload_as") or "prime") if has_prime else ""
    if role and role not in ROLES:
        raise UserError(f"upload_as must be one of {', '.join(ROLES)}, not {role[:20]!r}")
    # uncut: GenerateConfig refuses text over its limit in one line, as on the command line
    steer = {k: str(params.get(k, "")).strip() for k in ("key", "chords", "redo_bars")}
    files = {role: name} if role else {}
    if redo_name:
        files["redo"] = redo_name
    cfg = GenerateConfig(style=style, loop=loop, **values, **steer, **files)
    if cfg.key and cfg.key != "auto":
        parse_key(cfg.key)  # refused now, in one line, rather than when the job runs
    if cfg.chords:
        parse_chords(cfg.chords)
    return Request(model, cfg, role)


def _number(params: dict, name: str, limit: Limit) -> float:
    """The page's value of one number, checked against its limit."""
    raw = str(params.get(name, "")).strip()
    label = LABELS.get(name, name)
    if raw == "" and name == "seed":
        return secrets.randbelow(2**31)  # no seed given: a fresh one, shown after
    try:
        value = float(raw) if raw else limit.default
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise UserError(f"{label}: {raw[:40]!r} is not a number")
    if limit.integer and value != int(value):
        raise UserError(f"{label} must be a whole number, not {raw[:40]}")
    if not limit.lo <= value <= limit.hi:
        raise UserError(f"{label} must be between {limit.lo:.15g} and {limit.hi:.15g}, "
                        f"not {raw[:40]}")
    return int(value) if limit.integer else value


@dataclass
class Job:
    id: str
    request: Request
    folder: Path
    prime: Path | None = None  # the uploaded file (a prime or a melody)
    redo: Path | None = None  # a copy of the piece whose bars are redone
    state: str = "queued"  # queued, running, done, error
    stage: str = "waiting for the studio"
    progress: float = 0.0
    error: str = ""
    created: float = field(default_factory=time.time)
    timings: dict = field(default_factory=dict)
    results: list = field(default_factory=list)
    bytes: int = 0  # the size of its files once finished (MAX_STUDIO_BYTES)
    told: list = field(default_factory=list)  # what composing chose: the key, a metre


def _check_upload(folder: Path, data: bytes, name: str, role: str = "prime") -> Path:
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
    if role == "melody" and (bars := metrics.bar_at(score, max(int(score.end()) - 1, 0))) \
            > LIMITS["bars"].hi:
        raise UserError(f"{name}: a melody of {bars:,} bars is over the studio's "
                        f"{LIMITS['bars'].hi:.0f}-bar limit")
    return path


class Studio:
    """The models, the queue and the files of one server. `close()` removes the files."""

    def __init__(self, models: list[ModelEntry], soundfont: str | None = None):
        from lstmusic.render import check_audio_request, find_soundfont, find_synth

        # Audio works from pip alone (midirenderer and pretty_midi's SoundFont); should a
        # synth or SoundFont still be missing, the studio composes and draws, the page shows
        # no player and `audio_missing` says why. What the user named must be there.
        check_audio_request(soundfont)
        self.soundfont, self.audio_missing = None, ""
        try:
            find_synth()
            self.soundfont = find_soundfont(soundfont)
        except UserError as exc:
            self.audio_missing = f"no audio: {exc}"
        self.models = {m.id: m for m in models}
        self.folder = Path(tempfile.mkdtemp(prefix="lstmusic-studio-"))
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._queue: list[Job] = []
        self._lock = threading.Condition()
        self._composers: dict[str, object] = {}
        self._dropped: OrderedDict[str, None] = OrderedDict()  # jobs deleted to keep the caps
        self._closed = False
        # The running job's: set by close() so that a render in progress stops at once; each
        # job has its own, so that a job whose writing fails (and sets it) fails alone.
        self._cancel = threading.Event()
        self._worker = threading.Thread(target=self._work, name="studio-worker", daemon=True)
        self._worker.start()

    # ------------------------------------------------------------ called by the web app
    def submit(self, params: dict, upload: bytes = b"") -> Job:
        """Check a click's settings and upload, queue its job, return it (UserError if bad)."""
        # A prime is whatever came with a name, an empty body included (refused below).
        has_prime = bool(upload) or bool(str(params.get("prime_name", "")).strip())
        source = self._redo_source(params)
        redo_name = f"lstmusic-{source[0].request.cfg.seed}-{source[1]}.mid" if source else ""
        request = parse_request(params, self.models, has_prime, redo_name)
        with self._lock:
            if len(self._queue) >= MAX_QUEUED:
                raise Busy(f"the studio has {len(self._queue)} requests waiting; try again "
                           f"when some are done")
        job = Job(id=secrets.token_urlsafe(12), request=request,
                  folder=self.folder / secrets.token_hex(8))
        job.folder.mkdir()
        try:
            if has_prime:
                job.prime = _check_upload(job.folder, upload, request.prime_name,
                                          request.upload)
            if source:  # a copy: the earlier job's files may be deleted before this one runs
                job.redo = job.folder / "redo.mid"
                self._copy_redo(source, job.redo)
        except (UserError, OSError):
            shutil.rmtree(job.folder, ignore_errors=True)  # nothing kept for a refusal
            raise
        with self._lock:
            self._jobs[job.id] = job
            self._queue.append(job)
            self._forget_old()
            self._lock.notify()
        return job

    def _redo_source(self, params: dict) -> tuple[Job, int] | None:
        """(the finished job, its variation) whose bars a click asks to redo, if any."""
        job_id = str(params.get("redo_job", "")).strip()
        if not job_id:
            return None
        with self._lock:
            job = self._jobs.get(job_id)
        try:
            index = int(str(params.get("redo_index", "1")))
        except ValueError:
            index = 0
        if job is None or job.state != "done" or not 1 <= index <= len(job.results):
            raise UserError(f"the piece to redo is not here any more ({_keeps()})")
        return job, index

    @staticmethod
    def _copy_redo(source: tuple[Job, int], to: Path) -> None:
        try:
            shutil.copyfile(source[0].folder / f"variation-{source[1]}.mid", to)
        except FileNotFoundError:  # deleted by the caps since it was looked up
            raise UserError(f"the piece to redo is not here any more ({_keeps()})") from None

    def missing(self, job_id: str) -> str:
        """Why there is no job `job_id`: deleted to keep the caps, or never here (a restart)."""
        with self._lock:
            dropped = job_id in self._dropped
        return (f"this request's files were deleted ({_keeps()})" if dropped
                else "no such job (the studio was restarted?)")

    def status(self, job_id: str) -> dict | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            ahead = self._queue.index(job) if job in self._queue else 0
            return {
                "job": job.id, "state": job.state, "progress": round(job.progress, 3),
                "stage": (f"waiting: {ahead} request{'s' if ahead > 1 else ''} ahead"
                          if job.state == "queued" and ahead else job.stage),
                "queue_position": ahead, "error": job.error, "timings": dict(job.timings),
                "settings": job.request.public(),
                "model": self.models[job.request.model].name,
                "results": list(job.results), "told": list(job.told), "poll_s": POLL_HINT_S,
            }

    def file(self, job_id: str, index: int, kind: str) -> Path | None:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None or job.state != "done" or not 1 <= index <= len(job.results):
            return None
        return job.folder / f"variation-{index}.{kind}" if kind in KINDS else None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._cancel.set()
            self._lock.notify_all()
        self._worker.join(timeout=30)
        shutil.rmtree(self.folder, ignore_errors=True)

    def _forget_old(self) -> None:
        """Drop the oldest finished jobs and their files while more than MAX_JOBS_KEPT are
        kept or their files pass MAX_STUDIO_BYTES; the newest finished job, the one a user is
        about to hear, always stays (lock held)."""
        finished = [j for j in self._jobs.values() if j.state in ("done", "error")]
        total = sum(j.bytes for j in finished)
        for oldest in finished[:-1]:
            if len(self._jobs) <= MAX_JOBS_KEPT and total <= MAX_STUDIO_BYTES:
                break
            del self._jobs[oldest.id]
            total -= oldest.bytes
            self._dropped[oldest.id] = None
            shutil.rmtree(oldest.folder, ignore_errors=True)
        while len(self._dropped) > MAX_DROPPED_IDS:
            self._dropped.popitem(last=False)

    # ------------------------------------------------------------ the worker
    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._lock.wait()
                if self._closed:
                    return
                job = self._queue[0]
                job.state = "running"
            try:
                self._run(job)
                job.bytes = _folder_bytes(job.folder)
                job.state = "done"
            except (UserError, BadFile, Stopping) as exc:
                stopped = isinstance(exc, Stopping) or self._closed
                self._failed(job, "the studio was stopped" if stopped
                             else self._public(str(exc), job))
            except Exception as exc:  # a bug: the console gets the traceback, the page a line
                traceback.print_exc()
                self._failed(job, f"internal error ({type(exc).__name__}); see the server's "
                                  f"console")
            finally:
                with self._lock:
                    self._queue.remove(job)
                    self._forget_old()

    @staticmethod
    def _failed(job: Job, message: str) -> None:
        """A job that ends in an error keeps no files: the page offers none of them."""
        shutil.rmtree(job.folder, ignore_errors=True)
        job.error, job.state = message, "error"

    def _public(self, message: str, job: Job) -> str:
        """A message fit for the page: the upload named as the user knows it, and no server
        path."""
        if job.prime:
            message = message.replace(str(job.prime), job.request.prime_name)
        if job.redo:
            message = message.replace(str(job.redo), job.request.cfg.redo)
        return message.replace(str(job.folder) + "/", "").replace(str(self.folder), "")

    def _run(self, job: Job) -> None:
        from lstmusic.writeout import Target, write_all

        req, t0 = job.request, time.perf_counter()
        entry = self.models[req.model]
        self._stage(job, f"loading {entry.name}", 0.02)
        composer = self._composer(entry)
        files = {req.upload: str(job.prime)} if req.upload else {}
        cfg = replace(req.cfg, **files, **({"redo": str(job.redo)} if job.redo else {}))
        self._stage(job, "composing", 0.05)
        t1 = time.perf_counter()
        composition = self._compose(job, composer, cfg)
        job.timings["compose_s"] = round(time.perf_counter() - t1, 3)
        job.told = ([f"key {composition.key}"] if composition.key else []) + [
            self._public(note, job) for note in composition.notes]
        t1 = time.perf_counter()
        pieces = composition.pieces
        done = []

        def tick(what: str) -> None:
            with self._lock:
                done.append(what)
                job.stage, job.progress = what, 0.5 + 0.5 * len(done) / steps

        # A piece can be silent (e.g. one bar at a high temperature): it gets no audio, and
        # the other variations still do.
        steps = 2 * len(pieces) + sum(bool(self.soundfont and p.score.note_num())
                                      for p in pieces)
        self._stage(job, "rendering audio and piano rolls", 0.5)
        places = [Target(job.folder / f"variation-{i}.mid",
                         job.folder / f"variation-{i}.wav" if self.soundfont else None,
                         job.folder / f"variation-{i}.png",
                         f"{entry.name}: variation {i}, {piece.report.bars} bars, "
                         f"T={cfg.temperature:g}, top-p {cfg.top_p:g}, seed {cfg.seed}",
                         job.folder / f"variation-{i}")
                  for i, piece in enumerate(pieces, 1)]
        with self._lock:
            if self._closed:
                raise Stopping
            self._cancel = cancel = threading.Event()
        written = write_all([p.score for p in pieces], places, self.soundfont, tick=tick,
                            cancel=cancel)
        job.results = [_result(job, i, piece.report, entry, files)
                       for i, (piece, files) in enumerate(zip(pieces, written, strict=True), 1)]
        job.timings.update(render_s=round(time.perf_counter() - t1, 3),
                           total_s=round(time.perf_counter() - t0, 3),
                           ms_per_token=composition.ms_per_token)
        self._stage(job, "done", 1.0)

    def _compose(self, job: Job, composer, cfg: GenerateConfig):
        """Compose, showing progress; a closing studio stops the work at the next share."""
        steps = composer.steps(cfg)
        try:
            while True:
                try:
                    share = next(steps)
                except StopIteration as end:
                    return end.value
                self._stage(job, "composing", 0.05 + 0.45 * share)
        finally:
            steps.close()  # ends the sampling if the studio stopped it

    def _composer(self, entry: ModelEntry):
        from lstmusic.compose import Composer

        if entry.id not in self._composers:  # loaded once, kept for the server's life
            self._composers[entry.id] = Composer.load(entry.run_dir)
        return self._composers[entry.id]

    def _stage(self, job: Job, stage: str, progress: float) -> None:
        """Record how far a job has got; raise Stopping if the server is closing."""
        with self._lock:
            if self._closed:
                raise Stopping
            job.stage, job.progress = stage, progress


def _keeps() -> str:
    return (f"the studio keeps the last {MAX_JOBS_KEPT} requests and at most "
            f"{MAX_STUDIO_BYTES / 2**20:.0f} MB of their files")


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _result(job: Job, index: int, report, entry: ModelEntry, files) -> dict:
    """What the page gets of one variation: its files by URL, figures and reproduce line."""
    req, audio, sheet = job.request, files.wav is not None, bool(files.score)
    base = f"/api/jobs/{job.id}/{index}"
    figures = report.to_json()
    keep = ("bars", "notes", "distinct_pitches", "seconds", "resampled_bars", "repairs",
            "loop", "redo")
    return {"index": index, "midi": f"{base}/mid", "wav": f"{base}/wav" if audio else None,
            "no_audio": _no_audio(audio, report, files),
            "png": f"{base}/png", "download_name": f"lstmusic-{req.cfg.seed}-{index}.mid",
            "svg": f"{base}/svg" if sheet else None,
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
    from lstmusic.writeout import reproduce_command as line

    text = line(req.cfg, entry.run_dir)
    return text + (f"  # this is song-{index}.mid" if req.cfg.n > 1 else "")


# ---------------------------------------------------------------- the web app
def instruments() -> list[str]:
    from miditok.constants import MIDI_INSTRUMENTS

    return [f"{i} {inst['name']}" for i, inst in enumerate(MIDI_INSTRUMENTS)]


def _asset(name: str) -> str:
    return resources.files("lstmusic").joinpath("web", name).read_text(encoding="utf-8")


def create_app(studio: Studio, host: str = "127.0.0.1"):
    from fastapi import FastAPI, HTTPException
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import FileResponse, JSONResponse, Response
    from starlette.requests import ClientDisconnect

    app = FastAPI(title="lstmusic studio", docs_url=None, redoc_url=None, openapi_url=None)
    if host in LOCAL_HOSTS:
        # Answer only to names of this computer: a web page elsewhere cannot reach the studio
        # through a DNS name that points at 127.0.0.1 (DNS rebinding).
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware,
                           allowed_hosts=["127.0.0.1", "localhost", "[::1]", "::1"])
    _add_pages(app)

    @app.get("/api/models")
    def models():
        return {"models": [m.public() for m in studio.models.values()],
                "instruments": instruments(),
                "limits": {k: asdict(v) for k, v in LIMITS.items()},
                "max_upload_bytes": MAX_UPLOAD_BYTES, "audio_missing": studio.audio_missing}

    @app.post("/api/generate")
    async def generate(request: HttpRequest):
        if not _from_own_page(request):
            return JSONResponse({"error": "requests come from the studio's own page"}, 403)
        try:
            body = await _read_body(request)
        except ClientDisconnect:  # the tab was closed mid-upload: nobody to answer, no job
            return Response(status_code=400)
        if body is None:
            return JSONResponse({"error": f"the prime file is over the "
                                          f"{MAX_UPLOAD_BYTES >> 20} MB limit"}, 413)
        try:
            job = await run_in_threadpool(studio.submit, dict(request.query_params), body)
        except UserError as exc:
            return JSONResponse({"error": str(exc)}, 429 if isinstance(exc, Busy) else 400)
        return studio.status(job.id)

    @app.get("/api/jobs/{job_id}")
    def job_status(job_id: str):
        status = studio.status(job_id)
        if status is None:
            raise HTTPException(404, studio.missing(job_id))
        return status

    @app.get("/api/jobs/{job_id}/{index}/{kind}")
    def job_file(job_id: str, index: int, kind: str):
        path = studio.file(job_id, index, kind)
        if path is None or not path.is_file():
            raise HTTPException(404, "no such file")
        name = f"lstmusic-{studio.status(job_id)['settings']['seed']}-{index}.{kind}"
        disposition = "attachment" if kind in ("mid", "musicxml") else "inline"
        return FileResponse(path, media_type=KINDS[kind], filename=name,
                            content_disposition_type=disposition)

    return app


def _add_pages(app) -> None:
    """The page and its script and style sheet, read from the package on each request."""
    from fastapi.responses import HTMLResponse, Response

    pages = {"/": ("index.html", "text/html"), "/app.js": ("app.js", "text/javascript"),
             "/style.css": ("style.css", "text/css")}

    def page(name: str, media: str):
        return lambda: Response(_asset(name), media_type=media,
                                headers={"Cache-Control": "no-cache"})

    for route, (name, media) in pages.items():
        app.add_api_route(route, page(name, media), methods=["GET"],
                          response_class=HTMLResponse if media == "text/html" else Response)


def _from_own_page(request) -> bool:
    """Only the studio's own page may ask for work. A page from another site can still send
    a "simple" POST to 127.0.0.1 (no-cors, form): it cannot set this content type, and
    browsers mark it cross-site in Sec-Fetch-Site. Browsers without Fetch Metadata (older
    Safari, embedded views) still name the page in Origin on every POST: when it is there,
    it must be this server. A request with neither comes from no browser page (curl)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    site = request.headers.get("sec-fetch-site", "same-origin")
    origin = request.headers.get("origin")
    # Host and port only: behind an https proxy the page's scheme is not the one seen here.
    netloc = urlsplit(origin or "").netloc.lower()  # "" for "null" (a sandboxed page)
    own = origin is None or netloc != "" and netloc == request.headers.get("host", "").lower()
    return kind == "application/octet-stream" and site in ("same-origin", "none") and own


async def _read_body(request) -> bytes | None:
    """The request's body, or None if it is over MAX_UPLOAD_BYTES (counted as it arrives,
    whatever the headers claim)."""
    body, size = bytearray(), 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= MAX_UPLOAD_BYTES:
            body += chunk
        elif size > 8 * MAX_UPLOAD_BYTES:
            break  # read a little past the cap so the browser sees the answer, not a reset
    return bytes(body) if size <= MAX_UPLOAD_BYTES else None


def serve(run_dirs: list[str], runs: str | None, host: str, port: int,
          soundfont: str | None = None) -> None:
    """Run the studio until Ctrl-C; the temporary folder goes with it."""
    import uvicorn

    _check_port(host, port)
    studio = Studio(find_models(run_dirs, runs), soundfont)
    try:
        app = create_app(studio, host)
        names = ", ".join(m.name for m in studio.models.values())
        where = ("only this computer can open it; --host 0.0.0.0 to share it"
                 if host in LOCAL_HOSTS else "other computers on the network can open it too")
        shown = f"[{host}]" if ":" in host else host
        print(f"lstmusic studio: http://{shown}:{port}  (bound to {host}: {where})")
        print(f"models: {names}. Ctrl-C stops it and deletes its files ({studio.folder}).")
        if studio.audio_missing:
            print(f"lstmusic serve: {studio.audio_missing}; pieces get a piano roll and MIDI")
        # uvicorn stops on SIGTERM and then raises it again; with Python's default handler
        # that would end the process before `finally` deletes the files.
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            uvicorn.run(app, host=host, port=port, log_level="warning")
        finally:
            signal.signal(signal.SIGTERM, previous)
    finally:
        print("lstmusic studio: stopping (deleting its files)")
        studio.close()


def _check_port(host: str, port: int) -> None:
    """One clear line, before any work, if the address cannot be bound."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
                        f"another program may use it: choose another --port") from None


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)
