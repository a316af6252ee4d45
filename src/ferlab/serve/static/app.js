// The page of `ferlab serve`: no build step, no library, nothing loaded from elsewhere.
"use strict";

const METHOD_NAMES = { saliency: "Saliency", gradcam: "Grad-CAM", lime: "LIME" };
const $ = (id) => document.getElementById(id);
let info = null;          // GET /api/model
let current = null;       // { blob, name, result, cache: Map }
let stream = null;        // the webcam, while open

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "style") Object.assign(e.style, v);
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c);
  return e;
}

function status(text, isError = false) {
  const s = $("status");
  s.textContent = text;
  s.classList.toggle("error", isError);
}

async function errorText(resp) {
  try {
    const body = await resp.json();
    return body.error || `HTTP ${resp.status}`;
  } catch (_) {
    return `HTTP ${resp.status}`;
  }
}

async function loadModel() {
  try {
    const resp = await fetch("/api/model");
    if (!resp.ok) throw new Error(await errorText(resp));
    info = await resp.json();
    const m = $("model");
    m.replaceChildren("model ", el("b", { id: "model-name" }, info.model), ` (${info.architecture}, `,
      `${(info.parameters / 1e6).toFixed(2)} M parameters), precision `,
      el("b", { id: "precision" }, info.precision),
      info.bf16_native ? " (bf16 native on this CPU)" : " (this CPU has no native bf16)");
  } catch (e) {
    $("model").textContent = `the model could not be read: ${e.message}`;
  }
}

function form(blob, name) {
  const f = new FormData();
  f.append("file", blob, name);
  return f;
}

async function analyze(blob, name) {
  status(`analysing ${name}…`);
  const started = performance.now();
  let resp;
  try {
    resp = await fetch("/api/analyze", { method: "POST", body: form(blob, name) });
  } catch (e) {
    status(`the server did not answer: ${e.message}`, true);
    return;
  }
  if (!resp.ok) {
    status(await errorText(resp), true);
    return;
  }
  const result = await resp.json();
  current = { blob, name, result, cache: new Map() };
  await show(result, blob, performance.now() - started);
}

function colorOf(label) {
  return (info && info.colors[label]) || "#888";
}

function show(result, blob, ms) {
  const photo = result.photos[0];
  const img = $("photo");
  return new Promise((resolve) => {
    img.onload = () => {
      drawBoxes(photo);
      drawFaces(photo, img);
      resolve();
    };
    if (img.src) URL.revokeObjectURL(img.src);
    img.src = URL.createObjectURL(blob);
    $("result").hidden = false;
    const n = photo.faces.length;
    $("summary").textContent = `${photo.photo}: ${photo.width}x${photo.height} pixels, ` +
      (n ? `${n} face${n > 1 ? "s" : ""}` : "no face found") + ` (answered in ${ms.toFixed(0)} ms)`;
    const dl = $("download");
    if (dl.href.startsWith("blob:")) URL.revokeObjectURL(dl.href);
    dl.href = URL.createObjectURL(new Blob([JSON.stringify(result, null, 2)],
                                           { type: "application/json" }));
    status(n ? "" : "no face found in this photo");
  });
}

function drawBoxes(photo) {
  const stage = $("stage");
  stage.querySelectorAll(".box").forEach((b) => b.remove());
  photo.faces.forEach((f, i) => {
    const c = colorOf(f.label);
    const pct = (v, total) => `${(100 * v / total).toFixed(3)}%`;
    const box = el("div", { class: "box", "data-face": i, style: {
      left: pct(f.box.x, photo.width), top: pct(f.box.y, photo.height),
      width: pct(f.box.w, photo.width), height: pct(f.box.h, photo.height), borderColor: c } },
      el("span", { class: "tag", style: { background: c } },
         `${i}: ${f.label} ${Math.round(100 * f.probabilities[f.label])}%`));
    stage.append(box);
  });
}

function drawFaces(photo, img) {
  const list = $("faces");
  list.replaceChildren();
  photo.faces.forEach((f, i) => {
    const bars = el("div", { class: "bars" });
    for (const [emotion, p] of Object.entries(f.probabilities)) {
      bars.append(el("span", {}, emotion),
        el("div", { class: "track" }, el("div", { class: "fill", "data-emotion": emotion,
                                                  style: { width: `${(100 * p).toFixed(1)}%`,
                                                           background: colorOf(emotion) } })),
        el("span", { class: "pct" }, `${(100 * p).toFixed(1)}%`));
    }
    const thumb = el("canvas", { width: 144, height: 144, title: "the face in the photo" });
    thumb.getContext("2d").drawImage(img, f.box.x, f.box.y, f.box.w, f.box.h, 0, 0, 144, 144);
    const overlay = el("img", { class: "overlay", alt: "", hidden: true });
    const note = el("p", { class: "note" }, "Where does the model look? Pick a map.");
    const methods = el("div", { class: "methods" });
    for (const m of (info ? info.methods : Object.keys(METHOD_NAMES))) {
      const b = el("button", { type: "button", class: "button secondary method",
                               "data-method": m, textContent: METHOD_NAMES[m] || m });
      b.addEventListener("click", () => explain(i, m, { overlay, note, methods, thumb }));
      methods.append(b);
    }
    methods.append(note);
    list.append(el("article", { class: "face-card", "data-face": i },
      el("h2", {}, el("span", { class: "swatch", style: { background: colorOf(f.label) } }),
         `face ${i}: ${f.label} ${(100 * f.probabilities[f.label]).toFixed(0)}%`),
      bars, el("div", { class: "explain" }, thumb, overlay, methods)));
  });
}

async function explain(face, method, ui) {
  const mine = current;
  ui.methods.querySelectorAll("button").forEach((b) =>
    b.classList.toggle("active", b.dataset.method === method));
  const key = `${face}/${method}`;
  let answer = mine.cache.get(key);
  if (!answer) {
    ui.note.textContent = `computing ${METHOD_NAMES[method]}…`;
    let resp;
    try {
      resp = await fetch(`/api/explain?face=${face}&method=${method}`,
                         { method: "POST", body: form(mine.blob, mine.name) });
    } catch (e) {
      ui.note.textContent = `the server did not answer: ${e.message}`;
      return;
    }
    if (!resp.ok) {
      ui.note.textContent = await errorText(resp);
      return;
    }
    answer = await resp.json();
    mine.cache.set(key, answer);
  }
  if (mine !== current) return;  // another photo was dropped meanwhile
  ui.overlay.src = answer.overlay;
  ui.overlay.alt = `${METHOD_NAMES[method]} map of face ${face}`;
  ui.overlay.dataset.method = method;
  ui.overlay.hidden = false;
  ui.note.textContent = `${METHOD_NAMES[method]} for "${answer.target}", computed in ` +
    `${(1000 * answer.seconds).toFixed(0)} ms`;
}

function pick(file) {
  if (file) analyze(file, file.name || "photo");
}

async function openCamera() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    status("this browser gives no webcam to this page", true);
    return;
  }
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
  } catch (e) {
    status(`no webcam: ${e.message}`, true);
    return;
  }
  $("video").srcObject = stream;
  $("camera").hidden = false;
}

function closeCamera() {
  if (stream) stream.getTracks().forEach((t) => t.stop());
  stream = null;
  $("camera").hidden = true;
}

function snapshot() {
  const v = $("video");
  if (!v.videoWidth) return;
  const c = el("canvas", { width: v.videoWidth, height: v.videoHeight });
  c.getContext("2d").drawImage(v, 0, 0);
  c.toBlob((blob) => analyze(blob, "webcam.jpg"), "image/jpeg", 0.92);
}

document.addEventListener("DOMContentLoaded", () => {
  loadModel();
  $("file").addEventListener("change", (e) => pick(e.target.files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    pick(e.dataTransfer.files[0]);
  });
  $("camera-start").addEventListener("click", openCamera);
  $("camera-stop").addEventListener("click", closeCamera);
  $("snap").addEventListener("click", snapshot);
});
