// lstmusic studio page: settings -> POST /api/generate -> poll /api/jobs/ID -> players.
// Plain JavaScript with no library, so that the page works offline and needs no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const STORE = "lstmusic-studio-jobs"; // this tab's earlier jobs, so a reload keeps them
let models = [];
let audioMissing = ""; // why the studio renders no audio, if it cannot

function randomSeed() {
  return Math.floor(Math.random() * 2147483647);
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

function describe(m) {
  const parts = [m.tokenizer];
  if (m.styles.length) parts.push("styles: " + m.styles.join(", "));
  if (m.val_nll !== null) {
    const extra = [];
    if (m.val_perplexity !== null) extra.push(`perplexity ${m.val_perplexity}`);
    if (m.unigram_nll !== null) extra.push(`unigram baseline ${m.unigram_nll}`);
    parts.push(`validation NLL ${m.val_nll}` + (extra.length ? ` (${extra.join("; ")})` : ""));
  }
  if (m.step !== null) parts.push(`step ${m.step}`);
  return parts.join(" · ");
}

function fillStyles() {
  const m = models.find((x) => x.id === $("model").value);
  const style = $("style");
  // With no style asked for, the composer uses the model's default one.
  style.replaceChildren(new Option(m.styles.length ? `(default: ${m.default_style})` : "(none)", ""));
  for (const s of m.styles) style.add(new Option(s, s));
  $("model-info").textContent = `${describe(m)} · ${m.run_dir}`;
}

async function init() {
  const res = await fetch("/api/models");
  const info = await res.json();
  models = info.models;
  audioMissing = info.audio_missing;
  for (const m of models) {
    let label = `${m.name} · ${m.tokenizer}`;
    if (m.styles.length) label += m.styles.length > 4 ? ` · ${m.styles.length} styles`
      : ` · ${m.styles.join(", ")}`;
    if (m.val_nll !== null) label += ` · val ${m.val_nll}`;
    $("model").add(new Option(label, m.id));
  }
  info.instruments.forEach((name, i) => $("program").add(new Option(name, i)));
  $("model").addEventListener("change", fillStyles);
  fillStyles();
  // Start from the server's defaults (GenerateConfig's): a click composes as `lstmusic
  // generate` does. The seed is the dice's.
  for (const [id, limit] of Object.entries(info.limits)) {
    if ($(id) && id !== "seed") $(id).value = limit.default;
  }
  $("seed").value = randomSeed();
  $("dice").addEventListener("click", () => { $("seed").value = randomSeed(); });
  for (const id of ["temperature", "top_p", "key_strength"]) {
    const update = () => { $(id + "-value").textContent = Number($(id).value).toFixed(2); };
    $(id).addEventListener("input", update);
    update();
  }
  $("controls").addEventListener("submit", (e) => { e.preventDefault(); generate(info, null); });
  $("results").addEventListener("submit", (e) => { // "Redo bars" on a result
    e.preventDefault();
    const form = e.target;
    generate(info, { job: form.dataset.job, index: form.dataset.index,
                     bars: form.querySelector(".redo-bars").value });
  });
  $("controls").addEventListener("input", () => showError(""));
  // The page is served with Generate disabled: a click before this point would have found no
  // handler and been lost (a plain form submit reloads the page). Now it is sent.
  $("generate").disabled = false;
  $("generate").removeAttribute("title");
  await restore(JSON.parse(sessionStorage.getItem(STORE) || "[]"));
}

function remember(id) {
  const ids = JSON.parse(sessionStorage.getItem(STORE) || "[]");
  ids.push(id);
  sessionStorage.setItem(STORE, JSON.stringify(ids.slice(-50)));
}

function forget(id) {
  const ids = JSON.parse(sessionStorage.getItem(STORE) || "[]");
  sessionStorage.setItem(STORE, JSON.stringify(ids.filter((x) => x !== id)));
}

// redo: {job, index, bars} to write those bars of an earlier result anew, or null.
async function generate(info, redo) {
  showError("");
  const params = new URLSearchParams();
  for (const id of ["model", "style", "bars", "variations", "temperature", "top_p", "seed",
                    "tempo", "program", "prime_bars", "key", "key_strength", "chords",
                    "form", "upload_as"]) {
    params.set(id, $(id).value);
  }
  params.set("loop", $("loop").checked ? "1" : "0");
  if (redo) {
    params.set("redo_job", redo.job);
    params.set("redo_index", redo.index);
    params.set("redo_bars", redo.bars);
  }
  const file = redo ? null : $("prime").files[0];
  if (file) {
    if (file.size > info.max_upload_bytes) {
      showError(`${file.name}: over the ${info.max_upload_bytes / 1048576} MB limit`);
      return;
    }
    params.set("prime_name", file.name);
  }
  let res;
  $("generate").disabled = true; // one click, one request
  try {
    res = await fetch("/api/generate?" + params, {
      method: "POST", body: file || null,
      headers: { "Content-Type": "application/octet-stream" },
    });
  } catch (err) {
    showError("the studio does not answer (was it stopped?)");
    return;
  } finally {
    $("generate").disabled = false;
  }
  const body = await res.json().catch(() => ({ error: `the studio answered ${res.status}` }));
  if (!res.ok) {
    showError(body.error || body.detail || `the studio answered ${res.status}`);
    return;
  }
  remember(body.job);
  const card = addCard(body, "auto");
  if (!finished(body)) poll(card, body.job);
}

function finished(status) {
  return status.state === "done" || status.state === "error";
}

// preload: "auto" for a result just asked for (it is about to be played), "metadata" for
// results restored after a reload (so a reload does not fetch every earlier WAV).
function addCard(status, preload) {
  $("empty").hidden = true;
  const card = $("job-template").content.firstElementChild.cloneNode(true);
  card.dataset.job = status.job;
  const s = status.settings;
  let title = `${status.model}: ${s.bars} bars, T=${s.temperature}, top-p ${s.top_p}, ` +
    `seed ${s.seed}`;
  if (s.style) title += `, style ${s.style}`;
  if (s.loop) title += ", loop";
  if (s.key) title += `, in ${s.key}`;
  if (s.chords) title += `, over ${s.chords}`;
  if (s.form) title += `, form ${s.form}`;
  if (s.prime) title += `, continuing ${s.prime}`;
  if (s.melody) title += `, harmonising ${s.melody}`;
  if (s.redo) title += `, bars ${s.redo_bars} of ${s.redo} redone`;
  card.querySelector(".job-title").textContent = title;
  card.dataset.preload = preload;
  $("results").insertBefore(card, $("empty").nextSibling); // newest first
  update(card, status);
  return card;
}

function update(card, status) {
  card.querySelector(".job-progress").value = status.progress;
  const t = status.timings;
  let stage = status.stage;
  if (status.state === "done") {
    stage = `made in ${t.total_s.toFixed(1)} s (composing ${t.compose_s.toFixed(1)} s, ` +
      `audio and piano roll ${t.render_s.toFixed(1)} s)`;
    if (status.told && status.told.length) stage += "; " + status.told.join("; ");
  }
  card.querySelector(".job-stage").textContent = stage;
  if (status.state === "error") {
    const box = card.querySelector(".job-error");
    box.textContent = status.error;
    box.hidden = false;
    card.querySelector(".job-progress").hidden = true;
  }
  if (status.state === "done") {
    card.querySelector(".job-progress").hidden = true;
    const list = card.querySelector(".variations");
    for (const r of status.results) {
      const el = variation(r, status.results.length, card.dataset.preload);
      Object.assign(el.querySelector(".redo").dataset, { job: status.job, index: r.index });
      list.append(el);
    }
  }
}

function variation(r, count, preload) {
  const el = $("variation-template").content.firstElementChild.cloneNode(true);
  el.querySelector(".variation-title").textContent =
    count > 1 ? `Variation ${r.index} (seed ${r.seed})` : `Seed ${r.seed}`;
  const audio = el.querySelector("audio");
  if (r.wav) {
    audio.preload = preload;
    audio.src = r.wav;
  } else {
    audio.replaceWith(Object.assign(document.createElement("p"),
      { className: "hint", textContent: r.no_audio || audioMissing }));
  }
  el.querySelector("img").src = r.png;
  if (r.svg) {
    const xml = el.querySelector(".download-xml");
    xml.href = r.musicxml;
    xml.download = r.download_name.replace(/\.mid$/, ".musicxml");
    xml.hidden = false;
    showSheet(el.querySelector(".sheet"), r, r.wav ? audio : null);
  } else if (r.no_score) {
    el.querySelector(".sheet").textContent = "no score: " + r.no_score;
  }
  const link = el.querySelector(".download");
  link.href = r.midi;
  link.download = r.download_name;
  const f = r.figures;
  let figures = `${f.bars} bars, ${f.notes} notes, ${f.distinct_pitches} pitches, ${f.seconds} s`;
  if (f.loop) {
    figures += `; loop seam ${f.loop.wrap_nll.toFixed(2)} nats/token against ` +
      `${f.loop.median_bar_nll.toFixed(2)} for the median bar`;
  }
  if (f.redo) {
    figures += `; after the redone bars ${f.redo.seam_nll.toFixed(2)} nats/token against ` +
      `${f.redo.original_seam_nll.toFixed(2)} after the original ones (candidate ` +
      `${f.redo.candidate} of ${f.redo.candidates})`;
  }
  el.querySelector(".figures").textContent = figures;
  el.querySelector(".command").textContent = r.command;
  return el;
}

// The engraved score, inline so that its notes can light up while the audio plays: Verovio's
// time map says when each note begins; the notes of the latest moment heard are marked.
async function showSheet(box, r, audio) {
  const pages = r.svg_pages && r.svg_pages.length ? r.svg_pages : [r.svg];
  const [map, ...svgs] = await Promise.all([fetch(r.timemap).then((x) => x.json()),
                                            ...pages.map((u) => fetch(u).then((x) => x.text()))]);
  box.innerHTML = svgs.map((svg) => `<div class="page">${svg}</div>`).join("");
  if (!audio) return;
  let lit = [];
  const follow = () => {
    const ms = audio.currentTime * 1000;
    let i = -1;
    while (i + 1 < map.length && map[i + 1].tstamp <= ms) i++;
    for (const n of lit) n.classList.remove("playing");
    lit = i < 0 ? [] : (map[i].on || []).map((id) => box.querySelector("#" + CSS.escape(id)))
      .filter(Boolean);
    for (const n of lit) n.classList.add("playing");
    if (!audio.paused) requestAnimationFrame(follow);
  };
  audio.addEventListener("play", () => requestAnimationFrame(follow));
  audio.addEventListener("seeked", follow);
}

async function poll(card, id) {
  let status;
  try {
    const res = await fetch("/api/jobs/" + id);
    if (res.status === 404) { // the studio restarted, or deleted it to stay under its caps
      forget(id);
      const why = await res.json().catch(() => ({}));
      update(card, { state: "error", progress: 0, stage: "", timings: {},
        error: why.detail || "this request was lost when the studio restarted" });
      return;
    }
    if (!res.ok) throw new Error(String(res.status));
    status = await res.json();
  } catch (err) {
    card.querySelector(".job-stage").textContent = "lost touch with the studio; retrying";
    setTimeout(() => poll(card, id), 2000);
    return;
  }
  if (finished(status)) {
    update(card, status);
  } else {
    card.querySelector(".job-progress").value = status.progress;
    card.querySelector(".job-stage").textContent = status.stage;
    setTimeout(() => poll(card, id), status.poll_s * 1000);
  }
}

// This tab's earlier results, in the order they were asked for (each card goes on top).
async function restore(ids) {
  const all = await Promise.all(ids.map(async (id) => {
    const res = await fetch("/api/jobs/" + id).catch(() => null);
    if (res && res.status === 404) forget(id); // the studio restarted: its files are gone
    return res && res.ok ? res.json() : null;
  }));
  for (const status of all) {
    if (!status) continue;
    const card = addCard(status, "metadata");
    if (!finished(status)) poll(card, status.job);
  }
}

init().catch((err) => showError("could not load the studio: " + err));
