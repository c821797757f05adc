"""The studio's queue: one worker thread takes the jobs in order (the model uses the CPU
fully; two at once would only make both slower), composes each with `Composer.steps`, writes
its variations and records its progress for the page."""

from __future__ import annotations

import secrets
import shutil
import threading
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path

from lstmusic.common.config import GenerateConfig
from lstmusic.common.errors import BadFile, UserError
from lstmusic.studio import files
from lstmusic.studio.files import Shelf
from lstmusic.studio.requests import ModelEntry, Request, parse_request

MAX_QUEUED = 16  # more waiting requests than this are refused: one tab cannot block all
POLL_HINT_S = 0.1  # how often the page asks for progress: small JSON, loopback


class Busy(UserError):
    """The queue is full (HTTP 429)."""


class Stopping(Exception):
    """The server is stopping: the running job gives up."""


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


class Studio:
    """The models, the queue and the files of one server. `close()` removes the files."""

    def __init__(self, models: list[ModelEntry], soundfont: str | None = None):
        from lstmusic.output.render import check_audio_request, find_soundfont, find_synth

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
        self.shelf = Shelf()
        self.folder = self.shelf.folder
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._queue: list[Job] = []
        self._lock = threading.Condition()
        self._composers: dict[str, object] = {}
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
        job = Job(id=secrets.token_urlsafe(12), request=request, folder=self.shelf.new_folder())
        try:
            if has_prime:
                job.prime = files.check_upload(job.folder, upload, request.prime_name,
                                               request.upload)
            if source:
                job.redo = job.folder / "redo.mid"
                files.copy_redo(*source, job.redo)
        except (UserError, OSError):
            shutil.rmtree(job.folder, ignore_errors=True)  # nothing kept for a refusal
            raise
        with self._lock:
            self._jobs[job.id] = job
            self._queue.append(job)
            self.shelf.forget_old(self._jobs)
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
            raise UserError(f"the piece to redo is not here any more ({files.keeps()})")
        return job, index

    def missing(self, job_id: str) -> str:
        with self._lock:
            return self.shelf.missing(job_id)

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
        return files.variation_file(job, index, kind)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._cancel.set()
            self._lock.notify_all()
        self._worker.join(timeout=30)
        self.shelf.close()

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
                job.bytes = files.folder_bytes(job.folder)
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
                    self.shelf.forget_old(self._jobs)

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
        from lstmusic.output.writeout import write_all

        req, t0 = job.request, time.perf_counter()
        entry = self.models[req.model]
        self._stage(job, f"loading {entry.name}", 0.02)
        composer = self._composer(entry)
        uploads = {req.upload: str(job.prime)} if req.upload else {}
        cfg = replace(req.cfg, **uploads, **({"redo": str(job.redo)} if job.redo else {}))
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
        places = files.places(job, pieces, cfg, entry.name, bool(self.soundfont))
        with self._lock:
            if self._closed:
                raise Stopping
            self._cancel = cancel = threading.Event()
        written = write_all([p.score for p in pieces], places, self.soundfont, tick=tick,
                            cancel=cancel)
        job.results = [files.result(job, i, piece.report, entry, out)
                       for i, (piece, out) in enumerate(zip(pieces, written, strict=True), 1)]
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
        from lstmusic.compose.composer import Composer

        if entry.id not in self._composers:  # loaded once, kept for the server's life
            self._composers[entry.id] = Composer.load(entry.run_dir)
        return self._composers[entry.id]

    def _stage(self, job: Job, stage: str, progress: float) -> None:
        """Record how far a job has got; raise Stopping if the server is closing."""
        with self._lock:
            if self._closed:
                raise Stopping
            job.stage, job.progress = stage, progress
