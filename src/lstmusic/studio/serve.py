"""The studio: compose, listen and look in the browser (`lstmusic serve`).

A small FastAPI app and one static page (plain HTML, CSS and JavaScript shipped in
`lstmusic/studio/web`, nothing fetched from a CDN, so it works with no internet at all). FastAPI
rather than Gradio: the page needs a queue shared by every tab, per-request progress and
files that are served only by id, and a hand-written page of a few hundred lines gives
exactly that with two small dependencies (Gradio brings a large front end that fetches fonts
from the internet unless told otherwise).

The flow of one click, module by module: the page sends its settings (and an optional
prime MIDI file as the request body) to POST /api/generate (here); `Studio.submit` (jobs.py)
has them checked into a `Request` against `LIMITS` (requests.py) and the upload checked by
`midi_io.load`, the same bounded reader `prepare` uses (files.py), then queues a `Job`. One
worker thread takes jobs in order and composes with `Composer.steps`; each variation's MIDI,
WAV and piano-roll PNG go into the job's own folder under one temporary folder per server
(`files.Shelf`), and the page polls GET /api/jobs/ID for progress and results. Files are
served by job id, variation number and kind, looked up in the job's own table: nothing a
user sends ever becomes a path. The temporary folder is removed when the server stops; while
it runs, the oldest finished jobs' files are deleted past MAX_JOBS_KEPT jobs or
MAX_STUDIO_BYTES, and the page is told why when it asks for one of them.
"""

from __future__ import annotations

import signal
import socket
from dataclasses import asdict
from importlib import resources
from urllib.parse import urlsplit

from fastapi import Request as HttpRequest  # a module global: FastAPI reads the annotation

from lstmusic.common.errors import UserError
from lstmusic.studio.files import MAX_UPLOAD_BYTES, media_type
from lstmusic.studio.jobs import Busy, Studio
from lstmusic.studio.requests import LIMITS, find_models

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def instruments() -> list[str]:
    from miditok.constants import MIDI_INSTRUMENTS

    return [f"{i} {inst['name']}" for i, inst in enumerate(MIDI_INSTRUMENTS)]


def _asset(name: str) -> str:
    return resources.files("lstmusic.studio").joinpath("web", name).read_text(encoding="utf-8")


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
        return FileResponse(path, media_type=media_type(kind), filename=name,
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
