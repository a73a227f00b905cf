// The page at /: pick a task or drop example pairs, drop a query, run, see the prediction beside
// the pairs it used. It talks to the same API as every other client (POST /v1/jobs, then
// GET /v1/jobs/ID until done, then its result); nothing is loaded from anywhere but this server.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { tasks: {}, uploads: [], query: null, token: sessionStorage.getItem("lavin-token") || "" };
const paint = { drawing: false, painted: false, last: null };  // the area to fill, painted over the query

function headers() {
  return state.token ? { Authorization: "Bearer " + state.token } : {};
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
  if (response.status === 401) {
    $("token-row").hidden = false;
    throw new Error("this server wants a token: type it in the options, then try again");
  }
  const body = response.headers.get("content-type")?.includes("json") ? await response.json() : await response.blob();
  if (!response.ok && response.status !== 202) throw new Error(body.error || `the server answered ${response.status}`);
  return body;
}

function say(text, bad = false) {
  $("message").textContent = text;
  $("message").classList.toggle("bad", bad);
}

function figure(src, caption) {
  const fig = document.createElement("figure");
  const img = document.createElement("img");
  img.src = src;
  img.alt = caption;
  const cap = document.createElement("figcaption");
  cap.textContent = caption;
  fig.append(img, cap);
  return fig;
}

async function taskFile(task, name) {
  return URL.createObjectURL(await api(`/v1/tasks/${encodeURIComponent(task)}/files/${encodeURIComponent(name)}`));
}

let shown = 0;  // the latest showPairs call: an older one that finishes later draws nothing

async function showPairs() {
  const mine = ++shown;
  const figures = [];
  if (source() === "upload") {
    for (const pair of state.uploads) {
      figures.push(figure(URL.createObjectURL(pair.input), `${pair.id} in`), figure(URL.createObjectURL(pair.target), `${pair.id} out`));
    }
  } else {
    const task = state.tasks[$("task").value];
    for (const pair of task ? task.pairs.slice(0, 4) : []) {
      figures.push(figure(await taskFile(task.task, pair.input), `${pair.id} in`),
                   figure(await taskFile(task.task, pair.target), `${pair.id} out`));
    }
  }
  if (mine === shown) $("pairs").replaceChildren(...figures);
}

function source() {
  return document.querySelector("input[name=source]:checked").value;
}

function ready() {
  const context = source() === "task" ? Boolean($("task").value) : state.uploads.length > 0;
  $("run").disabled = !(context && state.query);
}

function pairUp(files) {
  const byId = {};
  for (const file of files) {
    const match = file.name.match(/^(.*)_(input|target)\.[^.]+$/);
    if (!match) { say(`${file.name}: name pairs ID_input.png and ID_target.png`, true); continue; }
    (byId[match[1]] ||= { id: match[1] })[match[2]] = file;
  }
  const complete = Object.values(byId).filter((p) => p.input && p.target);
  const missing = Object.values(byId).filter((p) => !(p.input && p.target)).map((p) => p.id);
  if (missing.length) say(`no partner for ${missing.join(", ")}`, true);
  return complete.sort((a, b) => a.id.localeCompare(b.id));
}

function dropZone(zone, input, take) {
  zone.addEventListener("click", (e) => { if (e.target !== input) input.click(); });
  zone.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") input.click(); });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => { e.preventDefault(); zone.classList.remove("over"); take([...e.dataTransfer.files]); });
  input.addEventListener("change", () => take([...input.files]));
}

function options() {
  const fields = { steps: Number($("steps").value), cfg: Number($("cfg").value), seed: Number($("seed").value) };
  if ($("npairs").value) fields.pairs = Number($("npairs").value);
  return JSON.stringify(fields);
}

async function showQuery() {
  // The query at its own pixels under a paint layer of the same size, so the mask sent matches it.
  clearMask();
  $("mask-box").hidden = true;
  if (!state.query) return;
  let bitmap;
  try {
    bitmap = await createImageBitmap(state.query);
  } catch {
    return;  // not an image the browser reads: the server says what is wrong with it
  }
  for (const id of ["query-view", "mask-paint"]) { $(id).width = bitmap.width; $(id).height = bitmap.height; }
  $("query-view").getContext("2d").drawImage(bitmap, 0, 0);
  $("mask-box").hidden = false;
}

function stroke(event) {
  const canvas = $("mask-paint"), box = canvas.getBoundingClientRect(), scale = canvas.width / box.width;
  const point = [(event.clientX - box.left) * scale, (event.clientY - box.top) * canvas.height / box.height];
  const from = paint.last || [point[0] - 0.01, point[1]];  // a click alone paints a dot
  const ctx = canvas.getContext("2d");
  Object.assign(ctx, { strokeStyle: "#ff3b30", lineCap: "round", lineJoin: "round", lineWidth: Number($("brush").value) * scale });
  ctx.beginPath();
  ctx.moveTo(...from);
  ctx.lineTo(...point);
  ctx.stroke();
  paint.last = point;
  paint.painted = true;
  $("mask-clear").disabled = false;
}

function clearMask() {
  const canvas = $("mask-paint");
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  paint.painted = false;
  $("mask-clear").disabled = true;
}

function maskImage() {
  // What was painted as the server's mask: white = fill, black = keep, at the query's size.
  if (!paint.painted) return null;
  const canvas = $("mask-paint"), out = document.createElement("canvas");
  out.width = canvas.width;
  out.height = canvas.height;
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
  for (let i = 0; i < pixels.data.length; i += 4) {
    const level = pixels.data[i + 3] >= 128 ? 255 : 0;
    pixels.data.set([level, level, level, 255], i);
  }
  out.getContext("2d").putImageData(pixels, 0, 0);
  const url = out.toDataURL("image/png");
  return { url, blob: dataBlob(url) };
}

function dataBlob(url) {
  const bytes = atob(url.split(",")[1]);
  return new Blob([Uint8Array.from(bytes, (c) => c.charCodeAt(0))], { type: "image/png" });
}

async function run() {
  $("run").disabled = true;
  $("result").hidden = true;
  $("progress").hidden = false;
  $("progress").value = 0;
  say("queued");
  const form = new FormData();
  form.append("query", state.query, state.query.name);
  form.append("options", options());
  form.append("format", "json");
  const mask = maskImage();
  if (mask) form.append("mask", mask.blob, "mask.png");
  if (source() === "task") form.append("task", $("task").value);
  else for (const pair of state.uploads) { form.append("input", pair.input, pair.input.name); form.append("target", pair.target, pair.target.name); }
  const started = performance.now();
  try {
    const job = await api("/v1/jobs", { method: "POST", body: form });
    let answer;
    for (;;) {
      const progress = await api(`/v1/jobs/${job.id}`);
      if (progress.state === "failed") throw new Error(progress.error?.error || "the run failed");
      if (progress.state === "done") { answer = await api(`/v1/jobs/${job.id}/result`); break; }
      if (progress.total) $("progress").value = progress.done / progress.total;
      say(progress.state === "running" ? `${progress.stage} ${progress.done}/${progress.total}` : "queued");
      await new Promise((r) => setTimeout(r, 200));
    }
    await show(answer, (performance.now() - started) / 1000, mask);
    say("done");
  } catch (error) {
    say(error.message, true);
  } finally {
    $("progress").hidden = true;
    ready();
  }
}

async function show(answer, seconds, mask) {
  const item = answer.queries[0];
  if (item.error) throw new Error(item.error);
  const grid = $("grid");
  grid.replaceChildren();
  for (const id of item.pairs) {
    const box = document.createElement("div");
    box.className = "pair";
    if (source() === "upload") {
      const pair = state.uploads.find((p) => p.id === id);
      box.append(figure(URL.createObjectURL(pair.input), `${id} in`), figure(URL.createObjectURL(pair.target), `${id} out`));
    } else {
      const pair = state.tasks[$("task").value].pairs.find((p) => p.id === id);
      box.append(figure(await taskFile($("task").value, pair.input), `${id} in`),
                 figure(await taskFile($("task").value, pair.target), `${id} out`));
    }
    grid.append(box);
  }
  const src = "data:image/png;base64," + item.data;
  grid.append(figure(URL.createObjectURL(state.query), "query"));
  if (mask) grid.append(figure(mask.url, "area filled"));
  const answerFig = figure(src, "prediction");
  answerFig.classList.add("answer");
  grid.append(answerFig);
  $("download").href = src;
  $("download").download = state.query.name.replace(/\.[^.]+$/, "") + "_pred.png";
  $("timing").textContent = `${seconds.toFixed(2)} s (model ${item.seconds.toFixed(2)} s), pairs ${item.pairs.join(", ")}`;
  $("result").hidden = false;
}

async function start() {
  $("token").value = state.token;
  $("token").addEventListener("change", () => { state.token = $("token").value; sessionStorage.setItem("lavin-token", state.token); start(); });
  try {
    const info = await api("/v1/models");
    const model = info.models[0];
    $("model").textContent = `${model.name} on ${info.device} (${info.dtype}), ${model.size} px`;
    const tasks = (await api("/v1/tasks")).tasks.filter((t) => t.kind === "image");
    state.tasks = Object.fromEntries(tasks.map((t) => [t.task, t]));
    $("task").replaceChildren(...tasks.map((t) => new Option(t.task + (t.trained === false ? " (not trained on)" : ""), t.task)));
    await showPairs();
    say("");
  } catch (error) {
    say(error.message, true);
  }
  ready();
}

dropZone($("pair-drop"), $("pair-files"), (files) => {
  state.uploads = pairUp(files);
  document.querySelector("input[value=upload]").checked = true;
  $("pair-drop").classList.toggle("filled", state.uploads.length > 0);
  showPairs();
  ready();
});
dropZone($("query-drop"), $("query-file"), (files) => {
  state.query = files[0] || null;
  $("query-drop").classList.toggle("filled", Boolean(state.query));
  $("query-drop").firstChild.textContent = state.query ? `query: ${state.query.name} ` : "Drop a query image here, or click to choose ";
  showQuery();
  ready();
});
$("mask-paint").addEventListener("pointerdown", (e) => {
  $("mask-paint").setPointerCapture(e.pointerId);
  paint.drawing = true;
  paint.last = null;
  stroke(e);
});
$("mask-paint").addEventListener("pointermove", (e) => { if (paint.drawing) stroke(e); });
for (const end of ["pointerup", "pointercancel"]) $("mask-paint").addEventListener(end, () => { paint.drawing = false; });
$("mask-clear").addEventListener("click", clearMask);
for (const radio of document.querySelectorAll("input[name=source]")) radio.addEventListener("change", () => { showPairs(); ready(); });
$("task").addEventListener("change", () => { showPairs(); ready(); });
$("run").addEventListener("click", run);
start();
