"""One self-contained HTML page of a run's evaluation, to open from disk: no server, no
network, every picture and sound inside the file as a base64 data: URI.

Sections: the run and the settings, the training curves (the run's curves.png), the
likelihood, the statistics against the reference music, the copy report, collapse, and each
sample's piano roll beside its nearest training excerpt, with an audio player (the synth of
render.py: FluidSynth where it is installed, else the pip wheel). Audio is the first
AUDIO_BARS bars of each sample, mono at AUDIO_RATE Hz, within AUDIO_BUDGET bytes in all, so
the page stays a few MB.
"""

from __future__ import annotations

import base64
import html
import tempfile
import wave
from pathlib import Path

import numpy as np

from lstmusic import __version__
from lstmusic.common import atomic

AUDIO_BARS = 8  # bars of each sample rendered to sound
AUDIO_RATE = 16000  # Hz; enough to judge notes and rhythm, a third of a CD's data
AUDIO_BUDGET = 6 * 2**20  # bytes of WAV in the page at most (about 3 minutes of sound)
MAX_SHOWN = 16  # samples drawn on the page at most (with --samples-from, there may be many)

METRIC_HELP = {
    "pitch_range": "highest minus lowest pitch, semitones",
    "pitch_class_entropy": "entropy of the pitch-class histogram, bits (max 3.58)",
    "scale_consistency": "share of notes in the best-fitting major or minor scale",
    "polyphony": "mean pitches sounding when any does",
    "empty_beat_rate": "share of beats with no note",
    "groove_consistency": "1 - mean distance between bars' onset patterns",
    "note_density": "notes per beat",
    "mean_duration": "mean note length, beats",
    "mean_ioi": "mean time between successive onsets, beats",
}

CSS = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.25em .7em;border-bottom:1px solid #eee;
text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#777}
.pair{display:flex;gap:1em;align-items:flex-start}.pair figure{flex:1;margin:0}
.pair img{width:100%}figcaption{font-size:.9em;color:#555}.bad{color:#b00}
"""


def write_html(evaluation, path: Path, soundfont=None) -> Path:
    """Write the page of an `evaluate.Evaluation` to `path` (atomically); returns `path`."""
    r = evaluation.result
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><meta name='generator' "
             f"content='lstmusic {_e(__version__)}'><title>lstmusic evaluation: "
             f"{_e(r['run']['path'])}</title><style>{CSS}</style></head><body>",
             f"<h1>Evaluation of {_e(r['run']['path'])}</h1>",
             _settings_section(r), _curves_section(Path(evaluation.run_dir)),
             _likelihood_section(r["likelihood"]), _metrics_section(r),
             _copies_section(r["originality"]), _form_section(r.get("form")),
             _collapse_section(r),
             _samples_section(evaluation, soundfont), "</body></html>"]
    atomic.write_bytes(Path(path), "\n".join(parts).encode())
    return Path(path)


def _e(value) -> str:
    return html.escape(str(value))


def _num(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def _plain(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "–" if value is None else str(value)


def _table(header: list[str], rows: list[list], numeric_from: int = 1) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td class='n'>{c}</td>" if i >= numeric_from else f"<td>{c}</td>"
                         for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _settings_section(r: dict) -> str:
    s, run = r["settings"], r["run"]
    rows = [[k, _e(_plain(v))] for k, v in run.items() if k != "path"]
    rows += [[k, _e(_plain(v))] for k, v in s.items() if k != "generate"]
    rows.append(["sampling", _e(", ".join(f"{k} {v}" for k, v in s["generate"].items()))])
    return "<h2 id='settings'>Run and settings</h2>" + _table(["", "value"], rows, 9)


def _curves_section(run_dir: Path) -> str:
    png = run_dir / "curves.png"
    if not png.is_file():
        return "<h2 id='curves'>Training curves</h2><p class='muted'>no curves.png</p>"
    return (f"<h2 id='curves'>Training curves</h2><img alt='training curves' "
            f"src='{_data_uri(png.read_bytes(), 'image/png')}'>")


def _likelihood_section(lk: dict) -> str:
    names = {"nll_per_token": "NLL per token (nats)", "perplexity": "perplexity",
             "accuracy": "top-1 accuracy", "nll_per_note": "NLL per note (nats)",
             "bits_per_second": "bits per second of music"}
    rows = [[label, _num(lk[k])] for k, label in names.items()]
    rows.append(["scored", f"{lk['files']} files, {lk['tokens']:,} tokens, {lk['notes']:,} "
                           f"notes, {lk['seconds'] / 60:.1f} min"])
    return ("<h2 id='likelihood'>Likelihood of held-out music</h2>"
            "<p>Per note and per second do not depend on the tokenizer: compare runs with "
            "those.</p>" + _table(["", "value"], rows))


def _metrics_section(r: dict) -> str:
    rows = [[f"{_e(name)}<br><span class='muted'>{_e(METRIC_HELP.get(name, ''))}</span>",
             _num(m["value"]), _num(m["reference"]), _num(m["gap"]), _num(m["overlap"], 2)]
            for name, m in r["metrics"].items()]
    return ("<h2 id='metrics'>Statistics against the reference</h2><p>Means over the samples "
            f"and over {r['settings']['reference_excerpts']} excerpts of "
            f"{r['settings']['bars']} bars from the {r['settings']['reference_files']} "
            "training and held-out files; overlap is the shared area of the two per-piece "
            "distributions (1: indistinguishable).</p>"
            + _table(["statistic", "samples", "reference", "gap", "overlap"], rows))


def _form_section(form: dict | None) -> str:
    if not form:
        return ""
    rows = []
    for key in ("16", "32"):
        for who in ("samples", "reference"):
            f = form[key][who]
            rows.append([f"first {key} bars, {who}", f["bars_measured"],
                         _num(f["mean_best_similarity"], 2),
                         _num(f["near_restatement_share"], 2),
                         _num(f["exact_restatement_share"], 2)])
    return ("<h2 id='form'>Form: bars that restate earlier bars</h2><p>Each bar as its notes' "
            "(16th-note onset, pitch), compared with every earlier bar but its neighbour; its "
            f"best match kept. Near: a best match of at least {form['near']}; exact: note for "
            f"note. The reference is {form['reference_files']} held-out files from their "
            "start.</p>"
            + _table(["", "bars", "mean best similarity", "near share", "exact share"], rows))


def _copies_section(o: dict) -> str:
    share = "–" if o["copied_ngram_share"] is None else f"{100 * o['copied_ngram_share']:.1f} %"
    held = o.get("held_out_share")
    held = "" if held is None else (f" (for the held-out files, which the model never saw: "
                                    f"{100 * held:.1f} %)")
    text = (f"<h2 id='copies'>Copy report</h2><p>{share} of the samples' {o['ngram_notes']}-note "
            "figures (pitch and onset intervals, in any transposition) occur in the training "
            f"files{held}; the longest run of notes shared with a training file is "
            f"{o['longest_copy_notes']} notes.</p>")
    if not o["near_copies"]:
        return text + (f"<p>No sample shares {o['near_copy_notes']} or more notes in a row "
                       "with a training file.</p>")
    rows = [[_e(c["sample"]), _e(c["training_file"]), c["bar"], c["notes"]]
            for c in o["near_copies"]]
    return text + _table(["sample", "training file", "bar", "notes shared"], rows, 2)


def _collapse_section(r: dict) -> str:
    rows = [[_e(s["name"]), s["notes"], s["distinct_pitches"], s["max_same_pitch_run"],
             _num(s["longest_silence_bars"], 1), s["resampled_bars"], s["repairs"],
             "<span class='bad'>" + _e("; ".join(s["collapse_reasons"])) + "</span>"
             if s["collapsed"] else "no"] for s in r["samples"]]
    return (f"<h2 id='collapse'>Collapse</h2><p>{100 * r['collapse_rate']:.0f} % of the samples "
            f"collapsed; {r['repairs']} decoding repairs.</p>"
            + _table(["sample", "notes", "pitches", "same-pitch run", "silent bars",
                      "bars resampled", "repairs", "collapsed"], rows))


def _samples_section(evaluation, soundfont) -> str:
    out = ["<h2 id='samples'>Samples and their nearest training excerpts</h2>"]
    audio = _Audio(soundfont)
    from lstmusic.evaluation.evaluate import MAX_DRAWN_BARS

    bars = min(evaluation.result["settings"]["bars"], MAX_DRAWN_BARS)
    shown = list(zip(evaluation.result["samples"], evaluation.samples, evaluation.excerpts,
                     strict=True))[:MAX_SHOWN]
    with tempfile.TemporaryDirectory() as tmp:
        out += [_sample_block(row, score, near, bars, audio, Path(tmp) / str(i))
                for i, (row, score, near) in enumerate(shown)]
    notes = []
    if len(evaluation.samples) > MAX_SHOWN:
        notes.append(f"The first {MAX_SHOWN} of {len(evaluation.samples)} samples.")
    if audio.reason:
        notes.append(f"Audio: {audio.reason}")
    elif audio.spent:
        notes.append(f"Audio: the first {AUDIO_BARS} bars drawn of each sample.")
    out[1:1] = [f"<p class='muted'>{_e(n)}</p>" for n in notes]
    return "\n".join(out)


def _sample_block(row: dict, score, near, bars: int, audio, stem: Path) -> str:
    """A sample's piano roll (and player) beside its nearest training excerpt."""
    from lstmusic.evaluation.metrics import NEAR_NGRAM
    from lstmusic.music.measure import excerpt

    copy = row["longest_copy"]
    view, first = _window(score, copy, bars)
    title = row["name"] if first is None else f"{row['name']} from bar {first}"
    mine = _png(view, stem.with_suffix(".sample.png"), title)
    if near is not None and copy:
        title = f"{copy['training_file']} from bar {copy['bar']} (nearest in training)"
        theirs = (f"<img alt='nearest training excerpt' src='"
                  f"{_png(near, stem.with_suffix('.near.png'), title)}'>"
                  f"<figcaption>{_e(copy['training_file'])}, from bar {copy['bar']}: "
                  f"{copy['notes']} notes shared (from the sample's bar {copy['sample_bar']})"
                  "</figcaption>")
    else:
        theirs = f"<p class='muted'>no run of {NEAR_NGRAM} notes shared with a training file</p>"
    sound = audio.tag(excerpt(view, 1, AUDIO_BARS), stem)
    return (f"<h3>{_e(row['name'])}</h3><div class='pair'><figure><img alt='sample' "
            f"src='{mine}'><figcaption>{row['notes']} notes, {row['distinct_pitches']} "
            f"pitches</figcaption>{sound}</figure><figure>{theirs}</figure></div>")


def _window(score, copy: dict | None, bars: int):
    """(what is drawn of a sample, its first bar or None when whole): a sample longer than
    `bars` bars (another system's whole piece) is drawn from where its longest shared run
    starts, so that it lines up with the training excerpt beside it."""
    from lstmusic.music.measure import bar_at, excerpt

    if bar_at(score, max(int(score.end()) - 1, 0)) <= bars:
        return score, None
    first = copy["sample_bar"] if copy else 1
    return excerpt(score, first, bars), first


def _png(score, path: Path, title: str) -> str:
    from lstmusic.output.writeout import Target, write_all

    write_all([score], [Target(None, png=path, title=title)])
    return _data_uri(path.read_bytes(), "image/png")


class _Audio:
    """WAV data URIs of scores while the synth works and the budget lasts."""

    def __init__(self, soundfont):
        self.soundfont, self.spent, self.reason = soundfont, 0, ""

    def tag(self, score, stem: Path) -> str:
        from lstmusic.output.writeout import Target, write_all

        if self.reason or not score.note_num():
            return ""
        midi, wav = stem.with_suffix(".mid"), stem.with_suffix(".wav")
        written = write_all([score], [Target(midi, wav)], self.soundfont,
                            sample_rate=AUDIO_RATE)[0]
        if written.no_wav:  # no synth or no SoundFont: the page goes without
            self.reason = written.no_wav
            return ""
        data = _mono(wav)
        if self.spent + len(data) > AUDIO_BUDGET:
            self.reason = (f"the page's audio budget of {AUDIO_BUDGET >> 20} MB is spent; "
                           "the later samples have none")
            return ""
        self.spent += len(data)
        return f"<audio controls src='{_data_uri(data, 'audio/wav')}'></audio>"


def _mono(wav: Path) -> bytes:
    """The WAV at `wav` mixed down to one channel (half the bytes), as WAV bytes."""
    import io

    with wave.open(str(wav)) as w:
        channels, rate = w.getnchannels(), w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, channels)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.mean(1).astype(np.int16).tobytes())
    return buf.getvalue()


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"
