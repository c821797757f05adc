"""The studio (`lstmusic serve`): the HTTP API on a real server, then the page in Chromium."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import wave
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import symusic
from conftest import make_score, piano_piece, write_midi

from lstmusic import cli
from lstmusic.common.config import GenerateConfig
from lstmusic.common.errors import UserError
from lstmusic.studio import files, jobs, requests, serve

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("LSTMUSIC_TEST_ARTIFACTS", ROOT / "test-artifacts"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    """A real studio on the bundled model, served by uvicorn on a free local port."""
    import uvicorn

    studio = jobs.Studio(requests.find_models())
    port = _free_port()
    app = serve.create_app(studio)
    web = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=web.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not web.started:
        assert time.time() < deadline, "the studio did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", studio
    web.should_exit = True
    thread.join(10)
    studio.close()
    assert not studio.folder.exists(), "the studio's temporary folder outlived it"


def _call(url: str, data: bytes | None = None, method: str = "GET",
          headers: dict | None = None) -> tuple[int, bytes, dict]:
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as res:
            return res.status, res.read(), dict(res.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)


def _submit(base: str, upload: bytes = b"", **params) -> tuple[int, dict]:
    query = urllib.parse.urlencode(params)
    status, body, _ = _call(f"{base}/api/generate?{query}", upload, "POST",
                            {"Content-Type": "application/octet-stream"})
    return status, json.loads(body)


def _wait(base: str, job: str) -> dict:
    deadline = time.time() + 120
    while time.time() < deadline:
        _, body, _ = _call(f"{base}/api/jobs/{job}")
        status = json.loads(body)
        if status["state"] in ("done", "error"):
            return status
        time.sleep(0.1)
    raise AssertionError(f"job {job} did not finish")


def _generate(base: str, upload: bytes = b"", **params) -> dict:
    code, status = _submit(base, upload, **params)
    assert code == 200, status
    return _wait(base, status["job"])


# ---------------------------------------------------------------- the API
def test_models_lists_the_bundled_model(server):
    base, _ = server
    _, body, _ = _call(f"{base}/api/models")
    info = json.loads(body)
    bundled = info["models"][0]
    assert bundled["tokenizer"] == "remi" and bundled["default_style"] == "bach"
    assert {"bach", "palestrina", "oneills1850"} <= set(bundled["styles"])
    assert bundled["val_nll"] < bundled["unigram_nll"]
    assert len(info["instruments"]) == 128 and info["instruments"][0].endswith("Piano")


def test_generate_gives_midi_wav_and_png_per_variation(server):
    base, _ = server
    status = _generate(base, bars=4, variations=2, seed=11, temperature=0.9, top_p=0.9,
                       tempo=100, program=6)
    assert status["state"] == "done", status["error"]
    assert [r["index"] for r in status["results"]] == [1, 2]
    assert status["timings"]["total_s"] > 0
    midis = []
    for r in status["results"]:
        code, data, headers = _call(base + r["midi"])
        assert code == 200 and data.startswith(b"MThd")
        assert "attachment" in headers["content-disposition"]
        score = symusic.Score.from_midi(data)
        assert score.note_num() > 0 and score.tracks[0].program == 6
        assert round(score.tempos[0].qpm) == 100
        midis.append(data)
        code, wav, _ = _call(base + r["wav"])
        with wave.open(io.BytesIO(wav)) as w:
            assert w.getsampwidth() == 2
            samples = np.frombuffer(w.readframes(w.getnframes()), "<i2")
        assert np.abs(samples).max() > 1000, "the WAV is silent"
        code, png, _ = _call(base + r["png"])
        assert png.startswith(b"\x89PNG")
    assert midis[0] != midis[1], "two variations came out the same"


def test_long_work_shows_progress(server):
    base, _ = server
    code, status = _submit(base, bars=64, variations=4, seed=8)
    seen = []
    while status["state"] not in ("done", "error"):
        seen.append((status["stage"], status["progress"]))
        time.sleep(0.01)
        status = json.loads(_call(f"{base}/api/jobs/{status['job']}")[1])
    assert status["state"] == "done"
    progress = [p for _, p in seen]
    assert progress == sorted(progress), "progress went backwards"
    assert any(stage == "composing" and 0.05 < p < 0.5 for stage, p in seen), seen
    assert any(stage.startswith(("audio", "piano roll")) for stage, _ in seen), seen


def test_loop_mode_reports_its_seam(server):
    base, _ = server
    status = _generate(base, bars=2, seed=4, loop=1, style="bach")
    figures = status["results"][0]["figures"]
    assert figures["bars"] == 2 and figures["loop"]["wrap_nll"] > 0
    assert "--loop" in status["results"][0]["command"]
    assert "--style bach" in status["results"][0]["command"]


def test_the_shown_command_reproduces_the_served_midi(server, tmp_path, monkeypatch):
    base, _ = server
    status = _generate(base, bars=4, seed=321, temperature=1.1, top_p=0.9)
    result = status["results"][0]
    command = result["command"].split()
    assert command[:2] == ["lstmusic", "generate"] and "--seed" in command
    monkeypatch.chdir(tmp_path)
    assert cli.main(command[1:]) == 0
    _, served, _ = _call(base + result["midi"])
    assert (tmp_path / "song.mid").read_bytes() == served


@pytest.mark.parametrize("params, says", [
    ({"bars": 0}, "bars must be between 1 and 64"),
    ({"bars": 65}, "bars must be between 1 and 64"),
    ({"bars": "ten"}, "is not a number"),
    ({"bars": 2.5}, "bars must be a whole number"),
    ({"bars": "nan"}, "is not a number"),
    ({"seed": "-inf"}, "is not a number"),
    ({"temperature": "1e309"}, "is not a number"),
    ({"variations": 5}, "variations must be between 1 and 4"),
    ({"temperature": 9}, "temperature must be between"),
    ({"top_p": 0}, "top-p must be between"),
    ({"seed": -1}, "seed must be between"),
    ({"tempo": 12}, "tempo must be 0"),
    ({"program": 128}, "program must be between 0 and 127"),
    ({"model": "../../etc"}, "unknown model"),
    ({"style": "polka"}, "has no style 'polka'"),
])
def test_out_of_range_values_are_refused_with_a_message(server, params, says):
    base, studio = server
    before = len(studio._jobs)
    code, body = _submit(base, **params)
    assert code == 400 and says in body["error"], body
    assert len(studio._jobs) == before, "a refused request made a job"


def test_bad_uploads_are_refused_with_a_message(server, tmp_path):
    base, studio = server
    folders = set(studio.folder.iterdir())
    code, body = _submit(base, b"hello, not music", prime_name="notes.txt")
    assert code == 400 and body["error"] == "notes.txt: not a MIDI file (no MThd header)"
    code, body = _submit(base, b"MThd\x00\x00\x00\x06\x00\x01\x00\x05\x01\xe0MTrk\xff",
                         prime_name="cut.mid")
    assert code == 400 and body["error"].startswith("cut.mid: ")
    empty = write_midi(symusic.Score(480), tmp_path / "empty.mid").read_bytes()
    code, body = _submit(base, empty, prime_name="empty.mid")
    assert code == 400 and "empty.mid" in body["error"]
    code, body = _submit(base, b"MThd" + bytes(files.MAX_UPLOAD_BYTES), prime_name="big.mid")
    assert code == 413 and "2 MB" in body["error"]
    prime = write_midi(piano_piece(0, bars=4), tmp_path / "p.mid").read_bytes()
    code, body = _submit(base, prime, prime_name="p.mid", loop=1)
    assert code == 400 and "loop" in body["error"]
    code, body = _submit(base, b"", prime_name="nothing.mid")
    assert code == 400 and body["error"] == "nothing.mid: the file is empty"
    assert set(studio.folder.iterdir()) == folders, "a refused upload left files behind"


def test_only_the_studios_own_page_may_ask_for_work(server):
    base, studio = server
    before = len(studio._jobs)
    url = f"{base}/api/generate?bars=1"
    # What a page on another site can send to 127.0.0.1 without the studio's consent.
    for headers in ({"Content-Type": "text/plain"},
                    {"Content-Type": "application/x-www-form-urlencoded"},
                    {"Content-Type": "application/octet-stream", "Sec-Fetch-Site": "cross-site"}):
        code, body, _ = _call(url, b"", "POST", headers)
        assert code == 403 and "own page" in json.loads(body)["error"], headers
    assert len(studio._jobs) == before


def test_a_foreign_origin_is_refused_without_fetch_metadata(server):
    """Issue 17.9: a browser that sends no Sec-Fetch-Site still names the page in Origin."""
    base, studio = server
    before = len(studio._jobs)
    octet = {"Content-Type": "application/octet-stream"}
    for origin in ("http://evil.example", "null", base.replace("127.0.0.1", "localhost"),
                   base + "0"):
        code, body, _ = _call(f"{base}/api/generate?bars=1", b"", "POST",
                              {**octet, "Origin": origin})
        assert code == 403 and "own page" in json.loads(body)["error"], origin
    assert len(studio._jobs) == before
    # The studio's own origin passes the check (and bars=0 is then refused for itself).
    code, body, _ = _call(f"{base}/api/generate?bars=0", b"", "POST", {**octet, "Origin": base})
    assert code == 400 and "bars must be" in json.loads(body)["error"]


def test_a_client_gone_mid_upload_leaves_no_traceback(server):
    """Issue 17.9: a tab closed while its prime file is on the way is no error on the console
    (uvicorn logs an unhandled one, with its traceback, to "uvicorn.error")."""
    import logging

    base, studio = server
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logging.getLogger("uvicorn.error").addHandler(handler)
    before = len(studio._jobs)
    host, port = base.removeprefix("http://").split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(f"POST /api/generate?bars=1&prime_name=p.mid HTTP/1.1\r\n"
                         f"Host: {host}:{port}\r\nContent-Type: application/octet-stream\r\n"
                         f"Content-Length: 1000000\r\n\r\n".encode() + b"MThd" + bytes(20000))
            time.sleep(0.3)  # the server is now reading the body
        time.sleep(0.5)  # ... and has seen the connection close
        assert _call(f"{base}/api/models")[0] == 200  # still serving
    finally:
        logging.getLogger("uvicorn.error").removeHandler(handler)
    assert not records, [r.getMessage() for r in records]
    assert len(studio._jobs) == before


def test_a_full_queue_answers_busy(server, monkeypatch):
    base, _ = server
    monkeypatch.setattr(jobs, "MAX_QUEUED", 0)
    code, body = _submit(base, bars=1)
    assert code == 429 and "waiting" in body["error"]


def test_a_silent_variation_gets_no_audio_and_the_others_do(server, monkeypatch):
    base, studio = server
    real = studio._composer

    class SecondSilent:
        def __init__(self, composer):
            self.composer = composer

        def steps(self, cfg):
            composition = yield from self.composer.steps(cfg)
            for track in composition.pieces[1].score.tracks:
                track.notes.clear()
            composition.pieces[1].report.notes = 0
            return composition

    monkeypatch.setattr(studio, "_composer", lambda entry: SecondSilent(real(entry)))
    status = _generate(base, bars=2, variations=2, seed=3)
    assert status["state"] == "done", status["error"]
    first, second = status["results"]
    assert first["wav"] and _call(base + first["wav"])[0] == 200
    assert second["wav"] is None and "silent" in second["no_audio"]
    assert _call(base + second["png"])[0] == 200


def test_a_prime_upload_is_continued(server, tmp_path):
    base, _ = server
    prime_score = piano_piece(3, bars=8)
    prime = write_midi(prime_score, tmp_path / "prime.mid").read_bytes()
    status = _generate(base, prime, prime_name="../../prime.mid", prime_bars=2, bars=4,
                       seed=5)
    assert status["state"] == "done", status["error"]
    assert status["settings"]["prime_name"] == "prime.mid"  # only ever a name to show
    assert "--prime prime.mid --prime-bars 2" in status["results"][0]["command"]
    _, data, _ = _call(base + status["results"][0]["midi"])
    out = symusic.Score.from_midi(data)
    first_bar = prime_score.ticks_per_quarter * 4

    def opening(score):
        scale = 480 / score.ticks_per_quarter
        return sorted({(round(n.time * scale), n.pitch) for t in score.tracks
                       for n in t.notes if n.time * scale < first_bar})

    assert opening(out) == opening(prime_score)


def test_files_are_served_only_by_job_number_and_kind(server):
    base, _ = server
    status = _generate(base, bars=2, seed=1)
    job = status["job"]
    assert _call(f"{base}/api/jobs/{job}/1/mid")[0] == 200
    for bad in [f"{job}/1/py", f"{job}/2/mid", f"{job}/0/wav", "nosuchjob/1/mid",
                f"{job}/1/..%2F..%2Fprime.mid", f"{job}/../../../etc/passwd"]:
        assert _call(f"{base}/api/jobs/{bad}")[0] == 404, bad


def test_only_local_host_names_are_answered(server):
    base, _ = server
    assert _call(f"{base}/api/models", headers={"Host": "evil.example"})[0] == 400
    assert _call(f"{base}/api/models", headers={"Host": "localhost"})[0] == 200


def test_requests_from_several_tabs_queue_and_never_mix(server):
    base, _ = server
    codes, jobs = zip(*[_submit(base, bars=3, seed=seed) for seed in (101, 202, 303)],
                      strict=True)
    assert codes == (200, 200, 200)
    assert max(j["queue_position"] for j in jobs) >= 1, "nothing waited in the queue"
    done = [_wait(base, j["job"]) for j in jobs]
    assert [d["settings"]["seed"] for d in done] == [101, 202, 303]
    files = {_call(base + d["results"][0]["midi"])[1] for d in done}
    assert len(files) == 3


def test_errors_while_composing_reach_the_page_as_one_line(server, tmp_path, monkeypatch,
                                                           capsys):
    base, studio = server
    prime = write_midi(piano_piece(1, bars=2), tmp_path / "p.mid").read_bytes()

    class Failing:
        def __init__(self, exc):
            self.exc = exc

        def steps(self, cfg):
            raise self.exc(f"{cfg.prime}: no notes in its first 1 bars")
            yield  # a generator, as Composer.steps is

    monkeypatch.setattr(studio, "_composer", lambda entry: Failing(UserError))
    status = _generate(base, prime, prime_name="mine.mid", bars=2)
    assert status["state"] == "error"
    assert status["error"] == "mine.mid: no notes in its first 1 bars"
    monkeypatch.setattr(studio, "_composer", lambda entry: Failing(ZeroDivisionError))
    status = _generate(base, bars=2)
    assert status["error"] == "internal error (ZeroDivisionError); see the server's console"
    assert "Traceback" in capsys.readouterr().err  # the console has it, the page does not


def test_stopping_gives_up_a_long_job_at_once():
    studio = jobs.Studio(requests.find_models())
    job = studio.submit({"bars": "64", "variations": "4", "loop": "1", "seed": "1"})
    while studio.status(job.id)["stage"] != "composing":
        time.sleep(0.01)
    t0 = time.perf_counter()
    studio.close()
    assert time.perf_counter() - t0 < 5
    assert studio.status(job.id)["error"] == "the studio was stopped"
    assert not studio.folder.exists()


def test_the_command_line_is_quoted_and_exact():
    entry = requests.find_models()[0]
    request = requests.Request(entry.id, GenerateConfig(bars=4, temperature=0.123456789,
                                                     top_p=0.9, seed=1, prime_bars=2,
                                                     prime="my song; rm -rf ~.mid"), "prime")
    line = files.reproduce_command(request, entry, 1)
    assert "--temperature 0.123456789 " in line
    assert "--prime 'my song; rm -rf ~.mid' --prime-bars 2" in line


def test_closing_the_studio_deletes_its_files():
    studio = jobs.Studio(requests.find_models())
    job = studio.submit({"bars": "1", "seed": "1"})
    while studio.status(job.id)["state"] not in ("done", "error"):
        time.sleep(0.05)
    assert any(studio.folder.rglob("*.mid"))
    studio.close()
    assert not studio.folder.exists()


def test_the_studio_keeps_its_files_under_a_byte_cap(monkeypatch):
    """Issue 17.3: past MAX_STUDIO_BYTES the oldest finished jobs' files are deleted, the newest
    always stays, and the page is told why an old job is gone."""
    monkeypatch.setattr(files, "MAX_STUDIO_BYTES", 1)  # every job is over it
    studio = jobs.Studio(requests.find_models())
    try:
        done = []
        for seed in ("1", "2"):
            job = studio.submit({"bars": "1", "seed": seed})
            while studio.status(job.id)["state"] not in ("done", "error"):
                time.sleep(0.05)
            done.append(job)
        first, second = done
        assert studio.status(second.id)["state"] == "done" and second.bytes > 0
        assert studio.file(second.id, 1, "mid").is_file()  # the newest is kept, though over
        assert studio.status(first.id) is None and not first.folder.exists()
        why = studio.missing(first.id)
        assert why.startswith("this request's files were deleted") and "0 MB" in why
        assert "restarted" in studio.missing("never-here")
        assert [p.name for p in studio.folder.iterdir()] == [second.folder.name]
    finally:
        studio.close()


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM])
def test_stopping_the_server_deletes_its_folder(how):
    """`lstmusic serve` as a user runs it: says where it listens, and Ctrl-C (or a service
    manager's SIGTERM) leaves no files behind."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "lstmusic", "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in first and "only this computer" in first
        folder = Path(re.search(r"deletes its files \((.+)\)", proc.stdout.readline())[1])
        deadline = time.time() + 30
        while _call_quietly(f"http://127.0.0.1:{port}/api/models") != 200:
            assert time.time() < deadline and proc.poll() is None, "the studio did not start"
            time.sleep(0.1)
        assert folder.is_dir()
        proc.send_signal(how)
        rest = proc.communicate(timeout=30)[0]
    finally:
        proc.kill()
    assert "Traceback" not in rest
    assert not folder.exists(), "the temporary folder outlived the server"


def _call_quietly(url: str) -> int | None:
    try:
        return _call(url)[0]
    except OSError:
        return None


def test_without_fluidsynth_the_studio_plays_through_the_pip_synth(monkeypatch):
    from lstmusic.output import render

    monkeypatch.setattr(render.shutil, "which", lambda name: None)
    studio = jobs.Studio(requests.find_models())
    try:
        assert studio.audio_missing == ""
        assert studio.file(*_finished(studio, {"bars": "1", "seed": "2"}), "wav").is_file()
    finally:
        studio.close()


def test_without_any_synth_the_studio_still_composes_and_draws(monkeypatch):
    from lstmusic.output import render

    def none():
        raise UserError("no synth for audio: pip install midirenderer (or install FluidSynth)")

    monkeypatch.setattr(render, "find_synth", none)
    studio = jobs.Studio(requests.find_models())
    try:
        assert "no synth for audio" in studio.audio_missing
        job_id, index = _finished(studio, {"bars": "1", "seed": "2"})
        result = studio.status(job_id)["results"][0]
        assert result["wav"] is None and studio.file(job_id, index, "png").is_file()
        assert not studio.file(job_id, index, "wav").exists()
    finally:
        studio.close()


def _finished(studio, fields: dict) -> tuple[str, int]:
    job = studio.submit(fields)
    while studio.status(job.id)["state"] not in ("done", "error"):
        time.sleep(0.05)
    assert studio.status(job.id)["state"] == "done", studio.status(job.id)
    return job.id, 1


def test_serve_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert cli.main(["serve", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a run folder" in err
    with pytest.raises(UserError, match="no such folder"):
        requests.find_models([], str(tmp_path / "nope"))


def test_a_broken_run_under_runs_is_skipped_with_a_line(tmp_path, capsys):
    from lstmusic.model.run import bundled_run_dir

    shutil.copytree(bundled_run_dir(), tmp_path / "good")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{}")
    (tmp_path / "bad" / "model.safetensors").write_bytes(b"")
    models = requests.find_models([], str(tmp_path))
    assert [m.name for m in models[1:]] == ["good"]
    assert "skipping" in capsys.readouterr().err
    with pytest.raises(UserError, match="describes no model"):
        requests.find_models([str(tmp_path / "bad")])


def test_a_port_in_use_is_one_line(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "choose another --port" in err


def test_runs_folder_offers_every_run_once(tmp_path):
    from lstmusic.model.run import bundled_run_dir

    for name in ("a", "b/c"):
        shutil.copytree(bundled_run_dir(), tmp_path / name)
    (tmp_path / "a" / "last").mkdir()
    shutil.copy(bundled_run_dir() / "config.json", tmp_path / "a" / "last")
    models = requests.find_models([str(tmp_path / "a")], str(tmp_path))
    assert [m.name for m in models] == ["a", "bundled", "c"]  # the named run first
    assert models[0].tokenizer == "remi" and models[0].val_nll is not None


# ---------------------------------------------------------------- the page, in Chromium
def _playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser test: install playwright and chromium")
        pytest.skip("needs the playwright package and Debian's chromium")
    return sync_playwright


def test_page_generates_plays_and_downloads_in_chromium(server, tmp_path):
    sync_playwright = _playwright()
    base, _ = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 1000},
                                      accept_downloads=True)
        page = context.new_page()
        problems = []
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        # A media element stops loading once it has what it needs: an abort is no failure.
        page.on("requestfailed", lambda req: req.failure == "net::ERR_ABORTED"
                or problems.append(f"{req.url}: {req.failure}"))
        page.goto(base + "/")
        page.wait_for_selector("#model option", state="attached")
        assert "remi" in page.inner_text("#model-info")
        page.fill("#bars", "4")
        page.fill("#seed", "77")
        page.click("text=Generate")
        page.wait_for_function(
            "() => { const a = document.querySelector('.variation audio');"
            " return a !== null && a.readyState >= 2 && a.duration > 1; }", timeout=60_000)
        page.wait_for_function(
            "() => { const i = document.querySelector('.variation img.roll');"
            " return i !== null && i.complete && i.naturalWidth > 100; }", timeout=30_000)
        assert "made in" in page.inner_text(".job-stage")
        assert "--seed 77" in page.text_content(".command")
        # the page starts from `lstmusic generate`'s defaults, as the server gives them
        assert "--temperature 0.9 " in page.text_content(".command")
        link = page.locator(".download").first
        assert link.inner_text() == "Download MIDI"
        with page.expect_download() as download:
            link.click()
        saved = tmp_path / download.value.suggested_filename
        download.value.save_as(saved)
        assert saved.name == "lstmusic-77-1.mid" and saved.read_bytes().startswith(b"MThd")
        assert symusic.Score(str(saved)).note_num() > 0

        # A second click lands above the first; a bad upload is a message on the page.
        page.fill("#seed", "78")
        page.click("text=Generate")
        page.wait_for_function("() => document.querySelectorAll('.variation audio').length == 2",
                               timeout=60_000)
        titles = page.locator(".job-title").all_inner_texts()
        assert "seed 78" in titles[0] and "seed 77" in titles[1]
        page.set_input_files("#prime", files=[{"name": "notes.txt", "mimeType": "text/plain",
                                               "buffer": b"not music"}])
        page.click("text=Generate")
        page.wait_for_selector("#error:not([hidden])")
        assert "notes.txt: not a MIDI file" in page.inner_text("#error")
        page.screenshot(path=str(ARTIFACTS / "studio.png"), full_page=True)
        assert page.is_enabled("#generate")

        # A reload keeps this tab's results, newest first.
        page.reload()
        page.wait_for_function("() => document.querySelectorAll('.variation').length == 2")
        titles = page.locator(".job-title").all_inner_texts()
        assert "seed 78" in titles[0] and "seed 77" in titles[1]

        # Two tabs at once: both requests queue, each tab lists only its own result.
        tabs = [context.new_page() for _ in range(2)]
        for seed, tab in enumerate(tabs, 90):
            tab.goto(base + "/")
            tab.wait_for_selector("#model option", state="attached")
            tab.fill("#bars", "4")
            tab.fill("#seed", str(seed))
        for tab in tabs:
            tab.click("text=Generate")
        for seed, tab in enumerate(tabs, 90):
            tab.wait_for_function("() => document.querySelectorAll('.variation audio')"
                                  ".length == 1 && document.querySelector('.variation img')"
                                  ".complete", timeout=60_000)
            assert f"--seed {seed} " in tab.text_content(".command")
            assert tab.locator(".job").count() == 1
        browser.close()
    assert not problems, problems


def test_the_studio_directs_the_music(server, tmp_path):
    base, _ = server
    status = _generate(base, bars=4, seed=21, key="D minor", chords="Dm G C")
    assert status["state"] == "done", status["error"]
    command = status["results"][0]["command"]
    assert "--key 'D minor'" in command and "--chords 'Dm G C'" in command
    _, data, _ = _call(base + status["results"][0]["midi"])
    pcs = {n.pitch % 12 for t in symusic.Score.from_midi(data).tracks for n in t.notes}
    assert pcs <= {2, 4, 5, 7, 9, 10, 0, 1}
    # Redo bars 2-3 of that result: the rest is kept, the line names the downloaded file.
    redone = _generate(base, bars=4, seed=22, redo_job=status["job"], redo_index=1,
                       redo_bars="2-3")
    assert redone["state"] == "done", redone["error"]
    assert "--redo lstmusic-21-1.mid --redo-bars 2-3" in redone["results"][0]["command"]
    assert redone["results"][0]["figures"]["redo"]["bars"] == [2, 3]
    # A melody to harmonise, uploaded like a prime.
    tune = make_score([(0, False, [(67, 90, 0, 480), (69, 90, 480, 960), (71, 90, 960, 1920)])])
    melody = write_midi(tune, tmp_path / "tune.mid").read_bytes()
    sung = _generate(base, melody, prime_name="tune.mid", upload_as="melody", seed=23)
    assert sung["state"] == "done", sung["error"]
    assert "--melody tune.mid" in sung["results"][0]["command"]
    # A form: the report says where each section starts, the line repeats it.
    shaped = _generate(base, seed=24, form="A2 B2 A2")
    assert shaped["state"] == "done", shaped["error"]
    assert "--form 'A2 B2 A2'" in shaped["results"][0]["command"]
    assert [s["bar"] for s in shaped["results"][0]["figures"]["form"]] == [1, 3, 5]
    for bad, says in (({"key": "H minor"}, "--key"), ({"chords": "Am Xq"}, "'Xq'"),
                      ({"form": "A0"}, "--form"),
                      ({"redo_job": "gone", "redo_bars": "1-2"}, "not here any more"),
                      ({"upload_as": "drums", "prime_name": "a.mid"}, "upload_as")):
        code, body = _submit(base, melody if "upload_as" in bad else b"", **bad)
        assert code == 400 and says in body["error"], (bad, body)


def test_generate_waits_until_the_page_is_ready_in_chromium(server):
    """Issue 17.9: a click made before the page has its models is not lost: Generate is
    disabled until then (a plain form submit would reload the page), then works."""
    sync_playwright = _playwright()
    base, studio = server
    before = len(studio._jobs)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        held = []  # the model list, held back: a busy machine that has not answered yet
        page.route("**/api/models", lambda route: held.append(route))
        page.goto(base + "/")
        page.wait_for_function("() => document.readyState === 'complete'")
        while not held:
            page.wait_for_timeout(20)
        assert page.is_disabled("#generate")
        page.click("#generate", force=True)  # an early click...
        page.press("#bars", "Enter")  # ... or Enter in a field: neither reloads the page
        page.wait_for_timeout(200)
        assert page.url == base + "/" and len(studio._jobs) == before
        held[0].continue_()
        page.wait_for_function("() => !document.getElementById('generate').disabled")
        page.fill("#bars", "1")
        page.click("#generate")
        page.wait_for_selector(".job", timeout=30_000)
        assert len(studio._jobs) == before + 1
        browser.close()


@contextmanager
def _studio_page(base: str):
    """(browser, page): the studio's page open in Chromium, its models listed."""
    sync_playwright = _playwright()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(base + "/")
        page.wait_for_selector("#model option", state="attached")
        yield browser, page


def test_page_redoes_bars_of_a_result_in_chromium(server):
    base, _ = server
    with _studio_page(base) as (browser, page):
        page.fill("#bars", "4")
        page.fill("#seed", "31")
        page.fill("#key", "A minor")
        page.fill("#chords", "Am Dm E")
        page.click("text=Generate")
        page.wait_for_selector(".variation .redo-bars", timeout=60_000)
        assert "in A minor, over Am Dm E" in page.inner_text(".job-title")
        # The score is on the page, under the piano roll, and its MusicXML reads back.
        page.wait_for_selector(".sheet svg g.note", timeout=30_000)
        href = page.get_attribute(".download-xml", "href")
        _, data, _ = _call(base + href)
        from music21 import converter

        assert len(converter.parseData(data.decode(), format="musicxml").parts) == 2
        page.screenshot(path=str(ARTIFACTS / "studio-score.png"), full_page=True)
        page.fill(".redo-bars", "2-3")
        page.click("text=Redo bars")
        page.wait_for_function("() => document.querySelectorAll('.variation').length == 2",
                               timeout=60_000)
        assert "bars 2-3 of lstmusic-31-1.mid redone" in page.locator(".job-title").first \
            .inner_text()
        assert "--redo-bars 2-3" in page.locator(".command").first.text_content()
        browser.close()


def test_every_page_of_a_long_score_is_on_the_page_in_chromium(server):
    base, _ = server
    with _studio_page(base) as (browser, page):
        page.fill("#bars", "64")
        page.fill("#seed", "32")
        page.click("text=Generate")
        page.wait_for_selector(".sheet .page svg", timeout=120_000)
        page.wait_for_function("() => document.querySelectorAll('.sheet .page svg').length > 1",
                               timeout=30_000)
        browser.close()


def test_every_page_of_a_long_score_is_served(server):
    base, _ = server
    status = _generate(base, bars=64, seed=31)
    assert status["state"] == "done", status["error"]
    r = status["results"][0]
    pages = r["svg_pages"]
    assert len(pages) >= 2 and pages[0] == r["svg"] and pages[1].endswith("/svg-2")
    for url in pages:
        code, data, headers = _call(base + url)
        assert code == 200 and headers["content-type"].startswith("image/svg+xml")
        assert data.lstrip().startswith(b"<")
    last = int(pages[-1].rsplit("-", 1)[-1]) if len(pages) > 1 else 1
    for missing in (f"svg-{last + 1}", "svg-1", "svg-0", "svg-99", "svg-x", "svg-%EF%BC%92"):
        assert _call_quietly(base + f"{r['svg'][:-3]}{missing}") == 404, missing  # ２: ASCII
