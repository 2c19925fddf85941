// nst serve: the page. Plain JavaScript, no build step; it uses only the JSON API (docs/SERVE.md).
"use strict";

const COLORS = { total: "#1d1f21", content: "#2a6fdb", style: "#c0392b", tv: "#1e8a4c" };
const EXTRA_COLORS = ["#8e44ad", "#e67e22", "#16a085", "#7f8c8d"];
const MAX_POINTS = 600; // per curve: enough for the eye, cheap to redraw 5 times a second

const state = {
  info: null,
  content: null, // File
  styles: [], // File[]
  specs: {}, // option name -> spec from /api/info
  watching: null, // job id
  source: null, // EventSource
  history: [], // rows {i, total, content, ...}
  frame: null, // the frame number shown (or loading)
  picks: { a: null, b: null }, // job ids to compare
  listed: "", // the last job list, to redraw only on change
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== null && value !== undefined) node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

// ---- inputs --------------------------------------------------------------------------------

function addFiles(role, files) {
  const images = [...files].filter((f) => f.type === "" || f.type.startsWith("image/"));
  if (role === "content") state.content = images[0] || state.content;
  else state.styles = [...state.styles, ...images].slice(0, 8);
  renderThumbs();
}

function renderThumbs() {
  const thumb = (file, remove) => {
    const url = URL.createObjectURL(file);
    const img = el("img", { src: url, alt: file.name });
    img.addEventListener("load", () => URL.revokeObjectURL(url));
    return el("div", { class: "thumb" }, img, el("span", { title: file.name }, file.name),
      el("button", { type: "button", title: "remove", "aria-label": `remove ${file.name}`, onclick: remove }, "×"));
  };
  $("content-thumbs").replaceChildren(...(state.content ? [thumb(state.content, () => { state.content = null; renderThumbs(); })] : []));
  $("style-thumbs").replaceChildren(...state.styles.map((file, i) => thumb(file, () => { state.styles.splice(i, 1); renderThumbs(); })));
}

function setUpDrop(zone, input, role) {
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    addFiles(role, e.dataTransfer.files);
  });
  input.addEventListener("change", () => { addFiles(role, input.files); input.value = ""; });
}

async function addExample(role, example) {
  const response = await fetch(example.url);
  const blob = await response.blob();
  addFiles(role, [new File([blob], example.name, { type: blob.type || "image/jpeg" })]);
}

function renderExamples() {
  for (const role of ["content", "style"]) {
    const buttons = state.info.examples.map((example) =>
      el("button", { type: "button", class: "example", "data-example": example.name, onclick: () => addExample(role, example) },
        example.name.replace(/\.\w+$/, "")));
    $(`${role}-examples`).replaceChildren(el("span", { class: "muted" }, "Examples:"), ...buttons);
  }
}

// ---- options -------------------------------------------------------------------------------

function optionInput(spec) {
  const id = `opt-${spec.name}`;
  let input;
  if (spec.kind === "choice") {
    input = el("select", { id });
    if (spec.default === null) input.append(el("option", { value: "" }, "off"));
    for (const choice of spec.choices) input.append(el("option", { value: choice }, choice));
    input.value = spec.default === null ? "" : spec.default;
  } else if (spec.kind === "bool") {
    input = el("input", { id, type: "checkbox" });
    input.checked = Boolean(spec.default);
  } else if (spec.kind === "list") {
    input = el("input", { id, type: "text", placeholder: spec.default === null ? "default" : spec.default.join(",") });
  } else {
    input = el("input", { id, type: "number", step: spec.kind === "int" ? "1" : "any",
      placeholder: spec.default === null ? "default" : String(spec.default) });
    if (spec.min !== null) input.min = spec.min;
    if (spec.max !== null) input.max = spec.max;
  }
  input.dataset.option = spec.name;
  const label = el("label", { for: id, title: spec.range ? `${spec.flag} ${spec.range}` : spec.flag }, spec.name.replaceAll("_", " "));
  return [label, input];
}

function renderOptions() {
  const main = [];
  const more = [];
  for (const spec of state.info.options) {
    state.specs[spec.name] = spec;
    (spec.main ? main : more).push(...optionInput(spec));
  }
  $("main-options").replaceChildren(...main);
  $("more-options").replaceChildren(...more);
  const sweepable = state.info.options.filter((s) => s.kind !== "bool");
  $("sweep-option").replaceChildren(...sweepable.map((s) => el("option", { value: s.name }, s.name.replaceAll("_", " "))));
  $("sweep-option").value = "style_weight";
  $("balance").addEventListener("input", balanceToWeights);
  $("opt-style_weight").addEventListener("input", weightsToBalance);
  $("opt-content_weight").addEventListener("input", weightsToBalance);
  $("opt-loss_scale").addEventListener("change", balanceToWeights);
  showBalance();
}

// The balance slider is log10 of the style weight over the loss scale's default, the content
// weight held at its default: left favours content, right favours style (α/β as in the papers).
function defaults() {
  return state.info.weights[$("opt-loss_scale").value] || state.info.weights.reference;
}

function balanceToWeights() {
  const shift = Number($("balance").value);
  $("opt-style_weight").value = shift === 0 ? "" : +(defaults().style_weight * 10 ** shift).toPrecision(3);
  $("opt-content_weight").value = "";
  showBalance();
}

function weightsToBalance() {
  const style = Number($("opt-style_weight").value) || defaults().style_weight;
  const content = Number($("opt-content_weight").value) || defaults().content_weight;
  const ratio = (style / content) / (defaults().style_weight / defaults().content_weight);
  $("balance").value = Math.max(-3, Math.min(3, Math.log10(ratio)));
  showBalance();
}

function showBalance() {
  const style = Number($("opt-style_weight").value) || defaults().style_weight;
  const content = Number($("opt-content_weight").value) || defaults().content_weight;
  $("balance-value").textContent = `α/β = ${(content / style).toExponential(1)}`;
}

function collectOptions() {
  const options = {};
  for (const input of document.querySelectorAll("[data-option]")) {
    const spec = state.specs[input.dataset.option];
    if (spec.kind === "bool") {
      if (input.checked !== Boolean(spec.default)) options[spec.name] = input.checked;
    } else if (input.value !== "" && !(spec.kind === "choice" && input.value === String(spec.default))) {
      options[spec.name] = spec.kind === "int" || spec.kind === "float" ? Number(input.value) : input.value;
    }
  }
  return options;
}

function formData(extra = {}) {
  if (!state.content) throw new Error("choose a content photo first");
  if (state.styles.length === 0) throw new Error("choose at least one style image");
  const form = new FormData();
  form.append("content", state.content, state.content.name);
  for (const style of state.styles) form.append("style", style, style.name);
  form.append("options", JSON.stringify(collectOptions()));
  for (const [key, value] of Object.entries(extra)) form.append(key, JSON.stringify(value));
  return form;
}

async function submit(path, extra) {
  $("form-error").textContent = "";
  try {
    const created = await api(path, { method: "POST", body: formData(extra) });
    return created;
  } catch (error) {
    $("form-error").textContent = error.message;
    return null;
  }
}

async function start() {
  const job = await submit("/api/jobs");
  if (job) { watch(job.id); refresh(); }
}

async function startSweep() {
  const option = $("sweep-option").value;
  const spec = state.specs[option];
  const values = $("sweep-values").value.split(",").map((v) => v.trim()).filter(Boolean)
    .map((v) => (spec.kind === "int" || spec.kind === "float") && !Number.isNaN(Number(v)) ? Number(v) : v);
  const sweep = await submit("/api/sweeps", { sweep: { option, values } });
  if (sweep) { watch(sweep.jobs[0].id); refresh(); }
}

// ---- the live view -------------------------------------------------------------------------

function watch(id) {
  if (state.source) state.source.close();
  state.watching = id;
  state.history = [];
  state.frame = null;
  $("live-title").textContent = id;
  $("frame-a").removeAttribute("src");
  $("frame-b").removeAttribute("src");
  $("frame-empty").hidden = false;
  $("job-error").textContent = "";
  const source = new EventSource(`/api/jobs/${id}/events`);
  state.source = source;
  source.addEventListener("progress", (e) => show(JSON.parse(e.data)));
  source.addEventListener("done", (e) => {
    source.close();
    show(JSON.parse(e.data));
    $("connection").textContent = "";
    refresh();
  });
  source.onopen = () => { $("connection").textContent = ""; };
  source.onerror = () => {
    if (source.readyState !== EventSource.CLOSED) $("connection").textContent = "reconnecting…";
  };
}

function show(job) {
  if (job.id !== state.watching) return;
  if (job.history_from === 0) state.history = [];
  state.history.push(...job.history);
  const status = $("status");
  status.textContent = job.status === "done" ? "✓ done" : job.status;
  status.className = `badge ${job.status}`;
  $("stage").textContent = job.stage === null ? "" : `stage ${job.stage + 1} · ${job.size[1]}×${job.size[0]} px`;
  $("iteration").textContent = `${job.iteration} / ${job.iterations}`;
  $("rate").textContent = job.it_s ? `${job.it_s.toFixed(job.it_s < 10 ? 2 : 1)} it/s` : "";
  $("eta").textContent = job.status === "running" && job.eta_s !== null ? `ETA ${duration(job.eta_s)}` :
    job.seconds !== null ? `took ${duration(job.seconds)}` : "";
  const active = job.status === "queued" || job.status === "running";
  $("stop").disabled = !active || state.info.readonly;
  const download = $("download");
  const finished = !active && job.has_image && !state.info.readonly;
  download.classList.toggle("disabled", !finished);
  if (finished) download.href = `/api/jobs/${job.id}/image?download=1`; else download.removeAttribute("href");
  $("job-error").textContent = job.error || "";
  $("warnings").replaceChildren(...job.warnings.map((w) => el("li", {}, w)));
  renderLosses(job.losses);
  drawCurve(state.history, job.iterations);
  if (job.has_image) loadFrame(job.id, active ? job.frame : `final-${job.status}`);
}

// Double buffering: the next frame loads into the hidden image and is swapped in once it has
// loaded, so the shown image never blanks; one load at a time, the latest wins.
function loadFrame(id, frame) {
  if (frame === null || frame === state.frame) return;
  state.frame = frame;
  const front = document.querySelector("#frame img.front");
  const back = document.querySelector("#frame img.back");
  if (back.dataset.loading) { back.dataset.pending = frame; return; }
  back.dataset.loading = "1";
  const settle = () => { // then the frame asked for while this one loaded, if any
    delete back.dataset.loading;
    const pending = back.dataset.pending;
    delete back.dataset.pending;
    if (pending && pending !== String(frame)) { state.frame = null; loadFrame(id, pending); }
  };
  back.onload = () => {
    back.classList.replace("back", "front");
    front.classList.replace("front", "back");
    $("frame-empty").hidden = true;
    settle();
  };
  back.onerror = settle;
  back.src = `/api/jobs/${id}/image?v=${encodeURIComponent(frame)}`;
}

function renderLosses(losses) {
  const rows = Object.entries(losses).map(([name, value]) =>
    el("tr", {}, el("td", {}, el("span", { class: "swatch", style: `background:${color(name)}` }), name),
      el("td", {}, value === null ? "–" : value.toPrecision(5))));
  $("losses").replaceChildren(...rows);
}

function color(name) {
  if (COLORS[name]) return COLORS[name];
  const names = Object.keys(state.history[0] || {}).filter((k) => k !== "i" && !COLORS[k]);
  return EXTRA_COLORS[Math.max(names.indexOf(name), 0) % EXTRA_COLORS.length];
}

// One polyline per term, log scale: the terms differ by orders of magnitude.
function drawCurve(rows, iterations) {
  const svg = $("curve");
  const [width, height, left, bottom, top] = [640, 240, 46, 20, 8];
  const ns = "http://www.w3.org/2000/svg";
  const node = (tag, attrs, text) => {
    const n = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    return n;
  };
  const terms = rows.length ? Object.keys(rows[rows.length - 1]).filter((k) => k !== "i") : [];
  const values = rows.flatMap((r) => terms.map((t) => r[t])).filter((v) => v > 0);
  const children = [];
  if (values.length) {
    const low = Math.floor(Math.log10(Math.min(...values)));
    const high = Math.max(Math.ceil(Math.log10(Math.max(...values))), low + 1);
    const x = (i) => left + ((width - left - 8) * i) / Math.max(iterations, 1);
    const y = (v) => top + ((height - top - bottom) * (high - Math.log10(v))) / (high - low);
    const every = Math.ceil((high - low) / 6);
    for (let p = low; p <= high; p += every) {
      children.push(node("line", { x1: left, x2: width - 8, y1: y(10 ** p), y2: y(10 ** p), class: "grid" }));
      children.push(node("text", { x: 4, y: y(10 ** p) + 4 }, `1e${p}`));
    }
    children.push(node("text", { x: width - 8, y: height - 4, "text-anchor": "end" }, `${iterations} it`));
    const step = Math.max(1, Math.ceil(rows.length / MAX_POINTS));
    for (const term of terms) {
      const points = rows.filter((r, k) => (k % step === 0 || k === rows.length - 1) && r[term] > 0)
        .map((r) => `${x(r.i).toFixed(1)},${y(r[term]).toFixed(1)}`).join(" ");
      children.push(node("polyline", { points, fill: "none", stroke: color(term), "stroke-width": term === "total" ? 2 : 1.3, "data-term": term }));
    }
    terms.forEach((term, k) => children.push(node("text", { x: left + 8 + 70 * k, y: height - 4, style: `fill:${color(term)}` }, term)));
  }
  svg.replaceChildren(...children);
}

function duration(seconds) {
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

async function stop() {
  if (!state.watching) return;
  try { await api(`/api/jobs/${state.watching}`, { method: "DELETE" }); } catch (error) { $("job-error").textContent = error.message; }
}

// ---- queue, gallery, compare, sweeps -------------------------------------------------------

async function refresh() {
  if (state.info.readonly) return;
  let jobs, sweeps;
  try {
    [jobs, sweeps] = await Promise.all([api("/api/jobs"), api("/api/sweeps")]);
  } catch (error) {
    $("connection").textContent = "the server does not answer";
    return;
  }
  const listed = JSON.stringify([jobs.jobs.map((j) => [j.id, j.status, j.has_image]), sweeps.sweeps.map((s) => [s.id, s.finished])]);
  if (listed === state.listed) return;
  state.listed = listed;
  renderQueue(jobs.jobs.filter((j) => j.status === "queued" || j.status === "running"));
  renderGallery(jobs.jobs.filter((j) => !(j.status === "queued" || j.status === "running")).reverse());
  renderSweeps(sweeps.sweeps);
}

function describe(job) {
  return `${job.content} × ${job.styles.join(", ")}`;
}

function params(job) {
  const o = job.options;
  const swept = Object.entries(job.parameters).map(([k, v]) => `${k}=${v}`).join(" ");
  return `${swept ? swept + " · " : ""}${o.iterations} it · ${o.size || "orig"} px · ${o.optimizer} · style ${o.style_weight} · seed ${o.seed}`;
}

function renderQueue(jobs) {
  const items = jobs.map((job) => el("li", {},
    el("span", { class: `badge ${job.status}` }, job.status),
    el("span", { class: "what", title: params(job) }, describe(job)),
    el("button", { type: "button", onclick: () => watch(job.id) }, "Watch"),
    el("button", { type: "button", onclick: () => api(`/api/jobs/${job.id}`, { method: "DELETE" }).then(refresh) }, "Cancel")));
  $("queue").replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, "Nothing queued.")]));
}

function renderGallery(jobs) {
  const cards = jobs.map((job) => {
    const card = el("div", { class: "card", "data-job": job.id });
    if (job.has_image) card.append(el("img", { src: `/api/jobs/${job.id}/image?v=final-${job.status}`, alt: describe(job), loading: "lazy", onclick: () => watch(job.id) }));
    card.append(el("div", {}, el("span", { class: `badge ${job.status}` }, job.status), " ", describe(job)),
      el("div", { class: "params" }, params(job)));
    if (job.error) card.append(el("div", { class: "error" }, job.error));
    const buttons = el("div", { class: "buttons" });
    if (job.has_image) {
      buttons.append(el("button", { type: "button", onclick: () => pick("a", job) }, "A"),
        el("button", { type: "button", onclick: () => pick("b", job) }, "B"),
        el("a", { class: "button", href: `/api/jobs/${job.id}/image?download=1`, download: `nst-${job.id}.png` }, "Download"));
    }
    card.append(buttons);
    card.classList.toggle("pick-a", state.picks.a && state.picks.a.id === job.id);
    card.classList.toggle("pick-b", state.picks.b && state.picks.b.id === job.id);
    return card;
  });
  $("gallery").replaceChildren(...(cards.length ? cards : [el("p", { class: "muted" }, "Finished results appear here.")]));
}

function pick(slot, job) {
  state.picks[slot] = job;
  for (const card of document.querySelectorAll(".card")) {
    card.classList.toggle(`pick-${slot}`, card.dataset.job === job.id);
  }
  renderCompare();
}

function renderCompare() {
  const { a, b } = state.picks;
  $("compare-panel").hidden = !(a && b);
  if (!(a && b)) return;
  const src = (job) => `/api/jobs/${job.id}/image?v=final-${job.status}`;
  $("compare-a1").src = $("compare-a2").src = src(a);
  $("compare-b1").src = $("compare-b2").src = src(b);
  $("caption-a").textContent = `A: ${params(a)}`;
  $("caption-b").textContent = `B: ${params(b)}`;
  const slider = document.querySelector("input[name=compare-mode]:checked").value === "slider";
  $("compare-side").hidden = slider;
  $("compare-slider").hidden = !slider;
  $("compare-a2").style.clipPath = `inset(0 ${100 - Number($("compare-position").value)}% 0 0)`;
}

function renderSweeps(sweeps) {
  $("sweeps-panel").hidden = sweeps.length === 0;
  $("sweeps").replaceChildren(...sweeps.slice().reverse().map((sweep) => {
    const done = sweep.jobs.filter((j) => j.status !== "queued" && j.status !== "running").length;
    const head = el("p", {}, `${sweep.option.replaceAll("_", " ")} = ${sweep.values.join(", ")} · ${done}/${sweep.jobs.length} finished`);
    return el("div", { class: "sweep-result" }, head,
      ...(sweep.finished ? [el("img", { src: `/api/sweeps/${sweep.id}/sheet`, alt: `contact sheet of sweep ${sweep.id}` })] : []));
  }));
}

// ---- start ---------------------------------------------------------------------------------

async function init() {
  state.info = await api("/api/info");
  document.body.classList.toggle("readonly", state.info.readonly);
  $("server-info").textContent = state.info.readonly ? "live view of a command-line run"
    : `${state.info.model} on ${state.info.devices.join(", ")}`;
  if (state.info.readonly) {
    const { jobs } = await api("/api/jobs");
    if (jobs.length) watch(jobs[0].id);
    return;
  }
  renderExamples();
  renderOptions();
  setUpDrop($("content-drop"), $("content-file"), "content");
  setUpDrop($("style-drop"), $("style-file"), "style");
  $("start").addEventListener("click", start);
  $("sweep-start").addEventListener("click", startSweep);
  $("stop").addEventListener("click", stop);
  for (const radio of document.querySelectorAll("input[name=compare-mode]")) radio.addEventListener("change", renderCompare);
  $("compare-position").addEventListener("input", renderCompare);
  await refresh();
  setInterval(refresh, 2000);
}

init().catch((error) => { $("connection").textContent = `cannot start: ${error.message}`; });
