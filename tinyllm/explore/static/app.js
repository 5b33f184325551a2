// tinyllm explore: the page. Every number shown comes from the JSON API (tinyllm/explore/api.py);
// this file only asks for it and draws it. No framework, no build step.
"use strict";

const $ = (selector) => document.querySelector(selector);

const state = {
  info: null,          // /api/info: the checkpoints, their configs and training curves
  model: null,         // the checkpoint explored (a name from info)
  view: null,          // the last /api/analyze answer for the text
  viewText: null,      // the text it answered for
  position: null,      // the token whose next-token table is shown (null: the last one)
  layer: 0, head: 0,   // the attention map shown
  ablate: {heads: [], mlps: []},   // the heads ([layer, head]) and MLPs (layer) switched off
  tab: "attention",
};

// -- talking to the server -------------------------------------------------------------------

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({model: state.model, ...body}),
  });
  if (!response.ok) throw new Error(await errorMessage(response));
  return response;
}

async function errorMessage(response) {
  try { return (await response.json()).error; }
  catch { return `the server answered ${response.status} ${response.statusText}: see its terminal`; }
}

function sampling() {
  const topK = $("#top-k").value.trim();
  const topP = Number($("#top-p").value);
  return {temperature: Number($("#temperature").value),
          top_k: topK === "" ? null : Number(topK), top_p: topP >= 1 ? null : topP};
}

function showError(error) {
  const box = $("#error");
  box.textContent = error ? String(error.message || error) : "";
  box.hidden = !error;
  document.body.classList.toggle("stale", Boolean(error));   // the views below are of the last good text
}

// Answers can arrive out of order (typing is faster than the model): each kind of request
// keeps a counter and an answer is drawn only if it is the latest of its kind.
// body[data-pending] counts the requests in flight and body[data-updates] the answers drawn
// (the browser test waits on them).
const latest = {};
async function request(kind, work) {
  const ticket = (latest[kind] = (latest[kind] || 0) + 1);
  const body = document.body;
  body.dataset.pending = String(Number(body.dataset.pending || 0) + 1);
  try {
    const result = await work();
    if (ticket === latest[kind]) { showError(null); return result; }
  } catch (error) {
    if (ticket === latest[kind]) showError(error);
  } finally {
    body.dataset.pending = String(Number(body.dataset.pending) - 1);
    body.dataset.updates = String(Number(body.dataset.updates || 0) + 1);
  }
  return null;
}

// -- the text and everything computed from it ---------------------------------------------------

async function analyze() {
  const body = {text: $("#text").value, position: state.position, layer: state.layer,
                lens: true, ...sampling()};
  const view = await request("analyze", async () => (await post("/api/analyze", body)).json());
  if (!view) return;
  state.view = view;
  state.viewText = body.text;
  drawTokens();
  drawNext(view.next);
  drawAttention();
  drawLens();
  if (hasAblation()) updateNext(); else drawAblation(null);
  if (state.tab === "compare") compare();
}

// The sampling settings, the position or the ablation changed: one small request.
async function updateNext() {
  if (!state.view || state.viewText !== $("#text").value) return analyze();
  const body = {text: $("#text").value, position: state.position, ...sampling(),
                ablate: hasAblation() ? state.ablate : null};
  const answer = await request("next", async () => (await post("/api/next", body)).json());
  if (!answer) return;
  drawNext(answer.next);
  drawAblation(answer.ablated ? answer : null);
  if (state.tab === "compare") compare();
}

async function changeLayer(layer) {
  state.layer = layer;
  const body = {text: $("#text").value, position: state.position, layer, lens: false, ...sampling()};
  const view = await request("analyze", async () => (await post("/api/analyze", body)).json());
  if (!view) return;
  state.view = {...view, lens: state.view && state.view.lens};
  drawAttention();
}

async function step(greedy) {
  const seed = $("#seed").value.trim();
  const body = {text: $("#text").value, ...sampling(), seed: seed === "" ? null : Number(seed)};
  if (greedy) body.temperature = 0;
  const answer = await request("step", async () => (await post("/api/step", body)).json());
  if (answer) setText(answer.text);
}

function append(tokenText) { setText($("#text").value + tokenText); }

function setText(text) {
  $("#text").value = text;
  state.position = null;
  analyze();
}

async function stream() {
  const seed = $("#seed").value.trim();
  const body = {text: $("#text").value, max_new_tokens: Number($("#stream-tokens").value),
                ...sampling(), seed: seed === "" ? null : Number(seed)};
  const button = $("#stream");
  button.disabled = true;
  await request("stream", async () => {
    const response = await post("/api/stream", body);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      $("#text").value += decoder.decode(value, {stream: true});
    }
  });
  button.disabled = false;
  setText($("#text").value);
}

async function ask() {            // a tuned model: the text as a request in its template
  const asked = await request("ask", async () =>
    (await post("/api/request", {text: $("#text").value})).json());
  if (asked) { $("#text").value = asked.text; await stream(); }
}

// -- drawing: tokens -----------------------------------------------------------------------------

const maxBits = () => Math.log2(currentInfo().tokenizer.vocab_size);   // a uniform guess
const shown = (text) => text.replace(/\n/g, "↵\n").replace(/\t/g, "⇥");

function tokenSpan(token, colour, title) {
  const span = document.createElement("span");
  span.className = "token" + (token.special ? " special" : "");
  span.textContent = shown(token.text);
  if (colour) span.style.background = colour;
  if (title) span.dataset.tip = title;
  return span;
}

function surpriseColour(bits) {
  if (bits === null) return "#eceff3";
  const x = Math.min(bits / maxBits(), 1);
  return `hsl(${28 - 20 * x}, ${60 + 30 * x}%, ${97 - 45 * x}%)`;
}

function drawTokens() {
  const view = state.view, strip = $("#tokens");
  strip.replaceChildren();
  const selected = state.position === null ? view.tokens.length - 1 : state.position;
  view.tokens.forEach((token, i) => {
    const tip = `#${i}  id ${token.id}  bytes ${token.bytes}\n` +
      (token.bits === null ? "the first token: nothing predicts it" :
       `${token.bits.toFixed(2)} bits  (p = ${fmtP(2 ** -token.bits)})`);
    const span = tokenSpan(token, surpriseColour(token.bits), tip);
    if (i === selected) span.classList.add("selected");
    span.addEventListener("click", () => {
      state.position = i === view.tokens.length - 1 ? null : i;
      drawTokens();
      drawLens();
      updateNext();
    });
    strip.append(span);
  });
  const chart = $("#bits-chart");
  chart.replaceChildren();
  view.tokens.forEach((token, i) => {
    const column = document.createElement("div");
    const bits = token.bits === null ? 0 : token.bits;
    column.innerHTML = `<i style="height:${Math.min(100, 100 * bits / maxBits()).toFixed(1)}%;background:${surpriseColour(token.bits)}"></i>`;
    column.dataset.tip = `“${shown(token.text)}”: ` + (token.bits === null ? "first token" : `${bits.toFixed(2)} bits`);
    if (i === selected) column.classList.add("selected");
    column.addEventListener("click", () => strip.children[i].click());
    chart.append(column);
  });
  const stops = [0, 0.25, 0.5, 0.75, 1].map((x) => surpriseColour(x * maxBits())).join(", ");
  $("#surprise-legend").innerHTML = `<span>0 bits: certain</span><i style="background:linear-gradient(90deg, ${stops})"></i>` +
    `<span>${maxBits().toFixed(1)} bits = log₂ ${currentInfo().tokenizer.vocab_size}: a uniform guess</span>`;
  $("#bpb").innerHTML = view.bits_per_byte === null ? "One token: nothing to score yet." :
    `<b>${view.bits_per_byte.toFixed(3)} bits per byte</b> — ${view.bits.toFixed(1)} bits over the ` +
    `${view.bytes} bytes of tokens 2–${view.tokens.length} (as <code>tinyllm eval</code> counts them)`;
  const notice = $("#notice");
  notice.hidden = view.dropped_tokens === 0;
  notice.textContent = `The text is ${view.tokens.length + view.dropped_tokens} tokens; the model ` +
    `reads at most ${view.context_size}` + (view.max_tokens < view.context_size ?
      ` and this page at most ${view.max_tokens}` : "") +
    `, so only the last ${view.max_tokens} are used (${view.dropped_tokens} cut from the front).`;
}

// -- drawing: the next-token table ------------------------------------------------------------------

const fmtP = (p) => p >= 0.001 ? `${(100 * p).toFixed(1)}%` : p > 0 ? p.toExponential(1) : "0";

function bar(p, cls) {
  return `<span class="bar ${cls}"><i style="width:${(100 * p).toFixed(1)}%"></i></span>${fmtP(p)}`;
}

function drawNext(next) {
  const view = state.view, last = next.position === view.tokens.length - 1;
  $("#next-where").textContent = `after “${shown(view.tokens[next.position].text)}” (token ${next.position + 1} of ` +
    `${view.tokens.length})` + (last ? " — click a row to append it" : "");
  const body = $("#next-table tbody");
  body.replaceChildren();
  for (const t of next.tokens) {
    const row = document.createElement("tr");
    row.dataset.id = t.id;
    row.innerHTML = `<td></td><td>${bar(t.probability, "model")}</td>` +
      `<td>${bar(t.sampling_probability, "sampled")}</td><td>${t.logit.toFixed(2)}</td>`;
    row.firstChild.append(tokenSpan(t, null, `id ${t.id}  bytes ${t.bytes}`));
    if (t.sampling_probability === 0) row.classList.add("excluded");
    if (last) { row.classList.add("clickable"); row.addEventListener("click", () => append(t.text)); }
    if (next.actual && next.actual.id === t.id) row.classList.add("actual");
    body.append(row);
  }
  const s = next.sampling;
  let summary = `Entropy ${next.entropy_bits.toFixed(2)} bits. ` +
    (s.temperature === 0 ? "Temperature 0: generate always takes the top token." :
     `With these settings generate draws from ${next.candidates.toLocaleString()} of ` +
     `${currentInfo().config.vocab_size.toLocaleString()} tokens.`);
  if (next.actual) summary += ` The text goes on with “${shown(next.actual.text)}”: p = ` +
    `${fmtP(next.actual.probability)}, rank ${next.actual.rank}.`;
  $("#next-summary").textContent = summary;
}

// -- drawing: attention ------------------------------------------------------------------------

function attentionImage(rows, window) {
  // one pixel per (query, key): the weight from white (0) to dark blue (1); the future (keys
  // after the query) light grey, and what a local layer's window leaves out a darker grey
  const T = rows.length, canvas = document.createElement("canvas");
  canvas.width = canvas.height = T;
  const ctx = canvas.getContext("2d"), image = ctx.createImageData(T, T);
  for (let i = 0; i < T; i++) {
    for (let j = 0; j < T; j++) {
      const k = 4 * (i * T + j);
      if (j > i) {
        image.data.set([241, 243, 246, 255], k);
      } else if (window !== null && i - j >= window) {
        image.data.set([200, 204, 212, 255], k);
      } else {
        const a = Math.sqrt(rows[i][j]);          // sqrt: small weights stay visible
        image.data.set([255 - 225 * a, 255 - 190 * a, 255 - 90 * a, 255], k);
      }
    }
  }
  ctx.putImageData(image, 0, 0);
  return canvas;
}

function drawAttention() {
  const view = state.view;
  if (!view || !view.attention) return;
  const attention = view.attention, config = currentInfo().config;
  const layers = $("#layers");
  layers.replaceChildren();
  config.attention_layers.forEach((kind, l) => {
    const b = document.createElement("button");
    b.textContent = `layer ${l} · ${kind}`;
    b.className = l === attention.layer ? "active" : "";
    b.addEventListener("click", () => changeLayer(l));
    layers.append(b);
  });
  const heads = $("#heads");
  heads.replaceChildren();
  attention.heads.forEach((rows, h) => {
    const figure = document.createElement("figure");
    figure.className = h === state.head ? "active" : "";
    figure.append(attentionImage(rows, attention.window));
    figure.insertAdjacentHTML("beforeend", `<figcaption>head ${h}</figcaption>`);
    figure.addEventListener("click", () => { state.head = h; drawAttention(); });
    heads.append(figure);
  });
  const rows = attention.heads[Math.min(state.head, attention.heads.length - 1)];
  const big = $("#attention-map"), T = rows.length, scale = Math.max(2, Math.floor(520 / T));
  const labelled = scale >= 12, margin = labelled ? 90 : 0;     // room for the tokens' text
  big.width = big.height = T * scale + margin;
  const ctx = big.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(attentionImage(rows, attention.window), margin, margin, T * scale, T * scale);
  if (labelled) {
    ctx.fillStyle = "#445"; ctx.font = `${Math.min(12, scale - 1)}px monospace`;
    view.tokens.forEach((token, i) => {
      const label = shown(token.text).replace(/\n/g, "").slice(0, 10);
      ctx.textAlign = "right"; ctx.fillText(label, margin - 4, margin + (i + 0.75) * scale);   // queries
      ctx.save(); ctx.translate(margin + (i + 0.7) * scale, margin - 4); ctx.rotate(-Math.PI / 3);
      ctx.textAlign = "left"; ctx.fillText(label, 0, 0); ctx.restore();                   // keys
    });
  }
  big.onmousemove = (e) => {
    const i = Math.floor((e.offsetY - margin) / scale), j = Math.floor((e.offsetX - margin) / scale);
    if (i < 0 || i >= T || j < 0 || j >= T) { hideTooltip(); lookAt(null); return; }
    lookAt(i);
    const w = j <= i ? rows[i][j] : 0;
    tooltip(e, `“${shown(view.tokens[i].text)}” looks at “${shown(view.tokens[j].text)}”: ${fmtP(w)}`);
  };
  big.onmouseleave = () => { hideTooltip(); lookAt(null); };
  $("#attention-caption").innerHTML = `Layer ${attention.layer}, head ${state.head}: ` +
    (attention.window === null ? "a global layer — each token may look at every token before it."
      : `a local layer — each token sees only the last ${attention.window} tokens (itself included); dark grey: out of its window.`) +
    " Rows are the tokens looking (queries), columns the tokens looked at (keys); the shade is the square root of the weight, so that small weights show.";
  lookAt(null);
}

// "What does this token look at": colour the strip by row i of the map.
function lookAt(i) {
  const view = state.view, strip = $("#attention-tokens");
  const rows = view.attention.heads[Math.min(state.head, view.attention.heads.length - 1)];
  strip.replaceChildren();
  view.tokens.forEach((token, j) => {
    const w = i !== null && j <= i ? rows[i][j] : 0;
    const span = tokenSpan(token, i === null ? null : `rgba(30, 80, 200, ${Math.sqrt(w).toFixed(3)})`,
                           i === null ? "hover to see what this token looks at" : `${fmtP(w)} of its attention`);
    if (j === i) span.classList.add("selected");
    if (Math.sqrt(w) > 0.6) span.style.color = "white";
    span.addEventListener("mouseenter", () => lookAt(j));
    strip.append(span);
  });
}

// -- drawing: the logit lens -----------------------------------------------------------------------

function drawLens() {
  const view = state.view, lens = view && view.lens, table = $("#lens-table");
  if (!lens) return;
  const byFinal = $("#lens-colour").value === "final";
  let html = "<thead><tr><th></th>" +
    view.tokens.map((t) => `<th>${escapeHtml(shown(t.text))}</th>`).join("") + "</tr></thead><tbody>";
  [...lens.layers].reverse().forEach((layer) => {
    html += `<tr><th>${layer.name}</th>`;
    layer.top.forEach((top, t) => {
      const p = byFinal ? layer.final_probability[t] : top[0].probability;
      const isFinal = top[0].id === lens.final[t].id;
      const tip = `${layer.name}, after “${shown(view.tokens[t].text)}”:\n` +
        top.map((c) => `“${shown(c.text)}” ${fmtP(c.probability)}`).join("\n") +
        `\nthe final answer “${shown(lens.final[t].text)}”: ${fmtP(layer.final_probability[t])}`;
      html += `<td class="${isFinal ? "final" : ""}" style="background:hsl(150, 55%, ${(96 - 50 * p).toFixed(1)}%)` +
        `${p > 0.6 ? ";color:white" : ""}" data-tip="${escapeHtml(tip)}">${escapeHtml(shown(top[0].text))}</td>`;
    });
    html += "</tr>";
  });
  table.innerHTML = html + "</tbody>";
  const selected = state.position === null ? view.tokens.length - 1 : state.position;
  table.querySelectorAll(`tr > :nth-child(${selected + 2})`).forEach((cell) => cell.classList.add("selected"));
  const box = table.parentElement, header = table.querySelector(`th:nth-child(${selected + 2})`);
  box.scrollLeft = Math.max(0, header.offsetLeft + header.offsetWidth - box.clientWidth + 40);
}

// -- drawing: ablation ---------------------------------------------------------------------------

const hasAblation = () => state.ablate.heads.length + state.ablate.mlps.length > 0;

function drawAblationGrid() {
  const config = currentInfo().config, grid = $("#ablation-grid");
  let html = "<tr><th></th>" + Array.from({length: config.num_heads}, (_, h) => `<th>head ${h}</th>`).join("") +
    "<th>MLP</th></tr>";
  for (let l = 0; l < config.num_layers; l++) {
    html += `<tr><th>layer ${l}</th>`;
    for (let h = 0; h < config.num_heads; h++) {
      const on = state.ablate.heads.some(([a, b]) => a === l && b === h);
      html += `<td><input type="checkbox" data-layer="${l}" data-head="${h}" ${on ? "checked" : ""}></td>`;
    }
    html += `<td><input type="checkbox" data-layer="${l}" data-mlp="1" ${state.ablate.mlps.includes(l) ? "checked" : ""}></td></tr>`;
  }
  grid.innerHTML = html + `<tr><td colspan="${config.num_heads + 2}"><button id="ablation-clear">switch everything back on</button></td></tr>`;
  grid.querySelectorAll("input").forEach((box) => box.addEventListener("change", () => {
    const l = Number(box.dataset.layer);
    if (box.dataset.mlp) {
      state.ablate.mlps = state.ablate.mlps.filter((x) => x !== l).concat(box.checked ? [l] : []);
    } else {
      const h = Number(box.dataset.head);
      state.ablate.heads = state.ablate.heads.filter(([a, b]) => a !== l || b !== h)
        .concat(box.checked ? [[l, h]] : []);
    }
    updateNext();
  }));
  $("#ablation-clear").addEventListener("click", () => {
    state.ablate = {heads: [], mlps: []};
    drawAblationGrid();
    updateNext();
  });
}

function drawAblation(answer) {
  const body = $("#ablation-table tbody");
  body.replaceChildren();
  if (!answer) {
    $("#ablation-summary").textContent = "Tick a head or an MLP to switch it off.";
    return;
  }
  for (const t of answer.changes.slice(0, 12)) {
    const change = t.ablated_probability - t.probability;
    const row = document.createElement("tr");
    row.dataset.id = t.id;
    row.innerHTML = `<td></td><td>${bar(t.probability, "model")}</td><td>${bar(t.ablated_probability, "ablated")}</td>` +
      `<td class="${change > 0 ? "up" : "down"}">${change > 0 ? "+" : ""}${(100 * change).toFixed(1)} pts</td>`;
    row.firstChild.append(tokenSpan(t, null, `id ${t.id}`));
    body.append(row);
  }
  const parts = answer.ablation.heads.map(([l, h]) => `head ${h} of layer ${l}`)
    .concat(answer.ablation.mlps.map((l) => `the MLP of layer ${l}`));
  $("#ablation-summary").innerHTML = `Without ${parts.join(", ")}: the next-token distribution moved ` +
    `<b>${answer.kl_bits.toFixed(3)} bits</b> (KL divergence from the model's), and the text costs ` +
    `<b>${answer.ablated_bits_per_byte === null ? "–" : answer.ablated_bits_per_byte.toFixed(3)}</b> bits per byte ` +
    `instead of ${answer.bits_per_byte === null ? "–" : answer.bits_per_byte.toFixed(3)}.`;
}

// -- drawing: the run ----------------------------------------------------------------------------

function drawRun() {
  const info = currentInfo(), canvas = $("#curves"), ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, pad = {l: 52, r: 16, t: 16, b: 36};
  ctx.clearRect(0, 0, W, H);
  const series = [
    {name: "train loss", colour: "#4a7bd0", points: info.train.map((r) => [r.step, r.loss])},
    {name: "validation loss", colour: "#e07b1a", points: info.validation.map((r) => [r.step, r.loss]), dots: true},
  ];
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) {
    ctx.fillStyle = "#667";
    ctx.font = "14px sans-serif";
    ctx.fillText("No metrics.jsonl beside this model: it was not trained by tinyllm train.", 20, 40);
  } else {
    const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
    const x0 = Math.min(...xs), x1 = Math.max(...xs) || 1, y0 = Math.min(...ys), y1 = Math.max(...ys);
    const X = (x) => pad.l + (W - pad.l - pad.r) * (x - x0) / (x1 - x0 || 1);
    const Y = (y) => H - pad.b - (H - pad.t - pad.b) * (y - y0) / (y1 - y0 || 1);
    ctx.strokeStyle = "#dde"; ctx.fillStyle = "#556"; ctx.font = "11px sans-serif";
    for (let k = 0; k <= 4; k++) {
      const y = y0 + (y1 - y0) * k / 4;
      ctx.beginPath(); ctx.moveTo(pad.l, Y(y)); ctx.lineTo(W - pad.r, Y(y)); ctx.stroke();
      ctx.fillText(y.toFixed(2), 8, Y(y) + 4);
      const x = x0 + (x1 - x0) * k / 4;
      ctx.fillText(String(Math.round(x)), X(x) - 10, H - pad.b + 16);
    }
    ctx.fillText("optimizer step", W / 2 - 30, H - 6);
    series.forEach((s, n) => {
      ctx.strokeStyle = ctx.fillStyle = s.colour; ctx.lineWidth = 1.8;
      ctx.beginPath();
      s.points.forEach(([x, y], k) => (k ? ctx.lineTo(X(x), Y(y)) : ctx.moveTo(X(x), Y(y))));
      ctx.stroke();
      if (s.dots) s.points.forEach(([x, y]) => { ctx.beginPath(); ctx.arc(X(x), Y(y), 3, 0, 7); ctx.fill(); });
      ctx.fillRect(W - 150, pad.t + 18 * n, 12, 3);
      ctx.fillText(s.name, W - 132, pad.t + 18 * n + 5);
    });
  }
  const best = info.best;
  $("#run-summary").innerHTML = `<b>${info.parameters.toLocaleString()}</b> parameters. ` +
    (best ? `Lowest validation loss ${best.loss.toFixed(4)} at step ${best.step}` +
      (best.bits_per_byte ? `: <b>${best.bits_per_byte.toFixed(3)} bits per byte</b> on held-out text.` : ".")
      : "No validation rows in this run's metrics.");
  const config = info.config;
  $("#config-table").innerHTML = "<caption>config</caption>" + Object.entries(config).map(([k, v]) =>
    `<tr><th>${k}</th><td>${escapeHtml(Array.isArray(v) ? v.join(", ") : String(v))}</td></tr>`).join("");
}

// -- drawing: checkpoints side by side -------------------------------------------------------------

async function compare() {
  const body = {text: $("#text").value, position: state.position, ...sampling()};
  const answer = await request("compare", async () => (await post("/api/compare", body)).json());
  if (!answer) return;
  const columns = $("#compare-columns");
  columns.replaceChildren();
  if (answer.models.length < 2) {
    columns.insertAdjacentHTML("beforeend", "<p>Only one checkpoint here. A run directory with a " +
      "<code>last/</code> checkpoint, or <code>--compare DIR</code>, shows two side by side.</p>");
  }
  for (const m of answer.models) {
    const info = state.info.checkpoints.find((c) => c.name === m.name);
    const column = document.createElement("div");
    column.className = "compare-column";
    column.innerHTML = `<h3>${m.name} <span class="help">${escapeHtml(info.label)}</span></h3>` +
      `<p><b>${m.bits_per_byte === null ? "–" : m.bits_per_byte.toFixed(3)} bits per byte</b> on this text</p>`;
    const strip = document.createElement("div");
    strip.className = "token-strip";
    m.tokens.forEach((t) => strip.append(tokenSpan(t, surpriseColour(t.bits),
      t.bits === null ? "first token" : `${t.bits.toFixed(2)} bits`)));
    column.append(strip);
    const list = document.createElement("ol");
    m.next.tokens.forEach((t) => {
      const item = document.createElement("li");
      item.append(tokenSpan(t), ` ${fmtP(t.probability)}`);
      list.append(item);
    });
    column.insertAdjacentHTML("beforeend", "<p class=\"help\">next token:</p>");
    column.append(list);
    columns.append(column);
  }
}

// -- small helpers -----------------------------------------------------------------------------

const currentInfo = () => state.info.checkpoints.find((c) => c.name === state.model);
const escapeHtml = (s) => s.replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));

function tooltip(event, text) {
  const tip = $("#tooltip");
  tip.textContent = text;
  tip.hidden = false;
  tip.style.left = `${Math.min(event.pageX + 14, window.scrollX + window.innerWidth - 280)}px`;
  tip.style.top = `${event.pageY + 16}px`;
}
const hideTooltip = () => { $("#tooltip").hidden = true; };

function debounce(f, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => f(...args), ms); };
}

function showTab(name) {
  state.tab = name;
  document.querySelectorAll("#tabs button").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
  document.querySelectorAll("section.tab").forEach((s) => { s.hidden = s.id !== name; });
  if (name === "lens") drawLens();          // scrolls to the selected token: only once shown
  if (name === "run") drawRun();
  if (name === "compare") compare();
}

function describeModel() {
  const info = currentInfo(), c = info.config;
  $("#model-summary").textContent = `${info.label} · ${(info.parameters / 1e6).toFixed(2)} M parameters · ` +
    `${c.num_layers} layers × ${c.num_heads} heads, ${c.hidden_size} wide, context ${c.context_size}, ` +
    `vocabulary ${c.vocab_size.toLocaleString()}` + (info.dtype && info.dtype !== "fp32" ? ` · ${info.dtype} weights` : "");
  $("#ask").hidden = !info.tokenizer.chat_template;
}

// -- start ----------------------------------------------------------------------------------------

async function start() {
  const info = await request("info", async () => {
    const response = await fetch("/api/info");
    if (!response.ok) throw new Error(await errorMessage(response));
    return response.json();
  });
  if (!info) return;
  state.info = info;
  state.model = info.checkpoints[0].name;
  const select = $("#model");
  info.checkpoints.forEach((c) => select.add(new Option(`${c.name} (${c.label})`, c.name)));
  select.addEventListener("change", () => {
    state.model = select.value;
    state.layer = state.head = 0;
    state.ablate = {heads: [], mlps: []};
    describeModel(); drawAblationGrid(); if (state.tab === "run") drawRun();
    analyze();
  });
  $("#text").maxLength = info.limits.max_text_chars;
  $("#stream-tokens").max = info.limits.max_new_tokens;
  describeModel();
  drawAblationGrid();

  $("#text").addEventListener("input", debounce(() => { state.position = null; analyze(); }, 250));
  for (const id of ["temperature", "top-p"]) {
    $(`#${id}`).addEventListener("input", () => {
      $(`#${id}-value`).textContent = Number($(`#${id}`).value).toFixed(2);
      updateNext();
    });
  }
  $("#top-k").addEventListener("input", debounce(updateNext, 150));
  $("#step-greedy").addEventListener("click", () => step(true));
  $("#step-sample").addEventListener("click", () => step(false));
  $("#stream").addEventListener("click", stream);
  $("#ask").addEventListener("click", ask);
  $("#lens-colour").addEventListener("change", drawLens);
  document.querySelectorAll("#tabs button").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));
  document.addEventListener("mouseover", (e) => {
    const target = e.target.closest("[data-tip]");
    if (target) tooltip(e, target.dataset.tip); else if (e.target.id !== "attention-map") hideTooltip();
  });
  await analyze();
}

start();
