"""Benchmark the studio: time from a click on "Generate" to a playable audio player.

In one run, on the same machine:
  studio:  `lstmusic serve` started as a user would, driven by Debian's Chromium through
           Playwright; the bundled model, 16 bars, one variation. The first click (which
           loads the model) is shown apart; then --clicks clicks with fresh seeds, each timed
           from the click until the new <audio> element can play (readyState >= 3) and its
           piano roll has loaded. The server's own split (composing; audio and piano roll,
           made side by side) comes from the job's timings.
  CLI:     the same piece from the command line, `lstmusic generate --bars 16 --audio --plot`,
           a new process each time (imports and model load included): what the studio saves.

Usage: python benchmarks/bench_serve.py [--clicks N] [--bars B]
Needs FluidSynth with a General MIDI SoundFont, Debian's chromium and the playwright package.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from common import load1, say

TARGET_S = 3.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_studio(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "lstmusic", "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/models", timeout=1).read()
            return proc
        except OSError:
            if proc.poll() is not None:
                sys.exit(f"lstmusic serve exited: {proc.stdout.read()}")
            time.sleep(0.1)
    proc.kill()
    sys.exit("lstmusic serve did not answer within 60 s")


def click_and_wait(page, k: int, seed: int) -> float:
    """Seconds from the click to the k-th result's audio being playable (roll loaded too)."""
    page.fill("#seed", str(seed))
    t0 = time.perf_counter()
    page.click("#generate")
    page.wait_for_function(
        f"() => {{ const a = document.querySelectorAll('.variation audio');"
        f" return a.length >= {k} && a[0].readyState >= 3; }}", timeout=120_000, polling=5)
    elapsed = time.perf_counter() - t0
    page.wait_for_function(
        "() => { const i = document.querySelector('.variation img.roll');"
        " return i.complete && i.naturalWidth > 0; }", timeout=60_000)
    return elapsed


def job_timings(port: int, page) -> dict:
    job = page.eval_on_selector(".job", "e => e.dataset.job")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/jobs/{job}") as res:
        return json.loads(res.read())["timings"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clicks", type=int, default=5)
    ap.add_argument("--bars", type=int, default=16)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("needs Debian's chromium (apt-get install chromium)")
    say(f"== studio: click to audio, bundled model, {args.bars} bars, 1 variation "
        f"(1-minute load average {load1()} at the start)")
    port = free_port()
    proc = start_studio(port)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#model option", state="attached")
            page.fill("#bars", str(args.bars))
            first = click_and_wait(page, 1, 1)
            say(f"first click (loads the model): {first:6.2f} s")
            times, splits = [], []
            for i in range(args.clicks):
                times.append(click_and_wait(page, i + 2, 1000 + i))
                splits.append(job_timings(port, page))
            browser.close()
    finally:
        proc.terminate()
        proc.wait(30)
    for i, (t, s) in enumerate(zip(times, splits, strict=True), 1):
        say(f"click {i}: {t:5.2f} s  (server: composing {s['compose_s']:.2f} s, audio and piano "
            f"roll {s['render_s']:.2f} s, total {s['total_s']:.2f} s)")
    median = statistics.median(times)
    server = statistics.median(s["total_s"] for s in splits)
    say(f"median click to audio: {median:.2f} s = {median / TARGET_S:.0%} of the {TARGET_S:g} s "
        f"target ({'met' if median < TARGET_S else 'MISSED'}); server work {server:.2f} s, "
        f"page and transfer {median - server:.2f} s")

    say("== the same piece from the command line, a new process each time")
    cli = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(3):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "lstmusic", "generate", "--bars",
                            str(args.bars), "--seed", str(1000 + i), "-o", f"{tmp}/s.mid",
                            "--audio", "--plot"], check=True, capture_output=True)
            cli.append(time.perf_counter() - t0)
    cli_median = statistics.median(cli)
    say(f"lstmusic generate --audio --plot: median {cli_median:.2f} s of 3 -> the studio's "
        f"click is {cli_median / median:.1f}x faster (the model and libraries stay loaded)")
    say(f"(1-minute load average {load1()} at the end)")


if __name__ == "__main__":
    main()
