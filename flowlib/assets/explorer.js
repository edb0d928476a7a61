/* Flow-map explorer (flowlib). Draws precomputed paths, tangents and jumps on a canvas.
 * No dependencies, no network: everything it shows arrives in the JSON block beside it.
 * Data layout (see flowlib/explorer.py): paths[P][G][2], jumps[H][Gs][Gt][2],
 * tangents[H][G][2] (display velocity per unit time), errors[H][Gs][Gt]. */
function flowlibExplorer(root) {
  "use strict";
  if (!root || root.dataset.ready === "1") return;
  root.dataset.ready = "1";
  var D = JSON.parse(root.querySelector(".fx-data").textContent);
  var G = D.times.length, H = D.jumps.length, P = D.paths.length;
  var DARK = "#333333", GREY = "#c4c4c4", CLOUD = "#666666";

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function fmt(v) { return (Math.abs(v) < 5e-5 ? 0 : v).toFixed(3); }
  function vec(a) { return "(" + a.map(fmt).join(", ") + ")"; }

  /* ---------- layout ---------- */
  if (D.title) root.appendChild(el("div", "fx-title", D.title));
  var main = el("div", "fx-main");
  var canvas = el("canvas", "fx-canvas");
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", "Paths of the flow from noise (time 0) to data (time 1), the point x_s, " +
    "its tangent, the jump to time t and the true point at time t. Use the sliders below.");
  var side = el("div", "fx-side");
  var legend = el("div", "fx-legend");
  var imagesBox = el("div", "fx-images");
  var readout = el("div", "fx-readout");
  readout.setAttribute("aria-live", "polite");
  side.appendChild(legend); side.appendChild(imagesBox); side.appendChild(readout);
  main.appendChild(canvas); main.appendChild(side);
  root.appendChild(main);

  var controls = el("div", "fx-controls");
  function slider(name, value) {
    var label = el("label", "fx-slider");
    label.appendChild(el("span", "fx-slider-name", name));
    var input = el("input", "fx-" + name);
    input.type = "range"; input.min = 0; input.max = G - 1; input.step = 1; input.value = value;
    input.setAttribute("aria-label", "time " + name);
    var out = el("output", "fx-" + name + "-value");
    label.appendChild(input); label.appendChild(out);
    controls.appendChild(label);
    return { input: input, out: out };
  }
  var sCtl = slider("s", Math.round(0.25 * (G - 1)));
  var tCtl = slider("t", Math.round(0.75 * (G - 1)));
  var play = el("button", "fx-play", "\u25B6 play");
  play.type = "button";
  var animate = el("select", "fx-animate");
  [["t", "animate t"], ["s", "animate s"]].forEach(function (o) {
    var opt = el("option", null, o[1]); opt.value = o[0]; animate.appendChild(opt);
  });
  animate.setAttribute("aria-label", "which time the play button moves");
  controls.appendChild(play); controls.appendChild(animate);
  root.appendChild(controls);

  var toggles = el("div", "fx-toggles");
  function toggle(cls, text, on) {
    var label = el("label");
    var box = el("input", cls); box.type = "checkbox"; box.checked = on;
    label.appendChild(box); label.appendChild(document.createTextNode(" " + text));
    toggles.appendChild(label);
    return box;
  }
  var showTangent = toggle("fx-show-tangent", "tangent", true);
  var showJump = toggle("fx-show-jump", "jump", true);
  var showTrue = toggle("fx-show-true", "true point at t", true);
  var showAll = toggle("fx-show-all", "all paths", true);
  var showCloud = toggle("fx-show-cloud", "cloud at s", false);
  root.appendChild(toggles);

  var pathBox = el("div", "fx-paths");
  pathBox.appendChild(el("span", "fx-paths-name", "highlighted paths:"));
  var pathChecks = [];
  for (var h = 0; h < H; h++) {
    var label = el("label");
    var box = el("input", "fx-path"); box.type = "checkbox"; box.checked = true;
    box.dataset.index = h;
    var swatch = el("span", "fx-swatch"); swatch.style.background = D.colors[h];
    label.appendChild(box); label.appendChild(swatch);
    label.appendChild(document.createTextNode("#" + (D.path_ids[h] + 1)));
    pathBox.appendChild(label);
    pathChecks.push(box);
  }
  root.appendChild(pathBox);

  legend.innerHTML =
    '<div><span class="fx-key fx-key-path"></span>path (true trajectory)</div>' +
    '<div><span class="fx-key fx-key-dot"></span>x<sub>s</sub>, the point at time s</div>' +
    '<div><span class="fx-key fx-key-tangent"></span>tangent: x<sub>s</sub> + (t\u2212s)\u00b7b<sub>s</sub>(x<sub>s</sub>)</div>' +
    '<div><span class="fx-key fx-key-jump"></span>jump ' + D.jump_label.replace(/_\{s,t\}/, "<sub>s,t</sub>")
      .replace(/x_s/, "x<sub>s</sub>") + '</div>' +
    '<div><span class="fx-key fx-key-true"></span>true point x<sub>t</sub> on the same path</div>';

  /* ---------- geometry ---------- */
  var dpr = window.devicePixelRatio || 1;
  var W = 540, Hh = 420;
  canvas.width = W * dpr; canvas.height = Hh * dpr;
  var ctx = canvas.getContext("2d");
  ctx.scale(dpr, dpr);
  var margin = { left: 46, right: 12, top: 12, bottom: 36 };
  var lo = D.bounds[0].slice(), hi = D.bounds[1].slice();
  var plotW = W - margin.left - margin.right, plotH = Hh - margin.top - margin.bottom;
  if (D.mode !== "1d") {  // equal aspect ratio in the plane
    var sx = (hi[0] - lo[0]) / plotW, sy = (hi[1] - lo[1]) / plotH, sc = Math.max(sx, sy);
    var cx = (hi[0] + lo[0]) / 2, cy = (hi[1] + lo[1]) / 2;
    lo = [cx - sc * plotW / 2, cy - sc * plotH / 2]; hi = [cx + sc * plotW / 2, cy + sc * plotH / 2];
  }
  function px(p) {
    return [margin.left + (p[0] - lo[0]) / (hi[0] - lo[0]) * plotW,
            margin.top + (hi[1] - p[1]) / (hi[1] - lo[1]) * plotH];
  }
  function niceTicks(a, b) {
    var span = b - a, step = Math.pow(10, Math.floor(Math.log10(span / 5)));
    [1, 2, 5, 10].some(function (m) { if (span / (step * m) <= 6) { step *= m; return true; } return false; });
    var ticks = [];
    for (var v = Math.ceil(a / step) * step; v <= b + 1e-9; v += step) ticks.push(Math.abs(v) < 1e-12 ? 0 : v);
    return ticks;
  }
  function drawAxes() {
    ctx.fillStyle = "#ffffff"; ctx.fillRect(0, 0, W, Hh);
    ctx.strokeStyle = "#eeeeee"; ctx.lineWidth = 1;
    ctx.font = "11px sans-serif"; ctx.fillStyle = "#555555";
    niceTicks(lo[0], hi[0]).forEach(function (v) {
      var p = px([v, lo[1]]);
      ctx.beginPath(); ctx.moveTo(p[0], margin.top); ctx.lineTo(p[0], margin.top + plotH); ctx.stroke();
      ctx.textAlign = "center"; ctx.fillText(+v.toFixed(3), p[0], margin.top + plotH + 13);
    });
    niceTicks(lo[1], hi[1]).forEach(function (v) {
      var p = px([lo[0], v]);
      ctx.beginPath(); ctx.moveTo(margin.left, p[1]); ctx.lineTo(margin.left + plotW, p[1]); ctx.stroke();
      ctx.textAlign = "right"; ctx.fillText(+v.toFixed(3), margin.left - 4, p[1] + 4);
    });
    ctx.strokeStyle = "#999999"; ctx.strokeRect(margin.left, margin.top, plotW, plotH);
    var names = D.mode === "1d" ? ["time t (0 = noise, 1 = data)", "position x"]
      : D.mode === "2d" ? ["first coordinate", "second coordinate"] : ["principal direction 1", "principal direction 2"];
    ctx.textAlign = "center"; ctx.fillText(names[0], margin.left + plotW / 2, Hh - 6);
    ctx.save(); ctx.translate(11, margin.top + plotH / 2); ctx.rotate(-Math.PI / 2);
    ctx.fillText(names[1], 0, 0); ctx.restore();
  }
  function line(points, color, width, dash) {
    ctx.strokeStyle = color; ctx.lineWidth = width; ctx.setLineDash(dash || []);
    ctx.beginPath();
    points.forEach(function (p, i) { var q = px(p); if (i === 0) ctx.moveTo(q[0], q[1]); else ctx.lineTo(q[0], q[1]); });
    ctx.stroke(); ctx.setLineDash([]);
  }
  function arrow(a, b, color, width, dash) {
    line([a, b], color, width, dash);
    var p = px(a), q = px(b), ang = Math.atan2(q[1] - p[1], q[0] - p[0]), len = 8;
    if (Math.hypot(q[0] - p[0], q[1] - p[1]) < 3) return;
    ctx.fillStyle = color; ctx.beginPath(); ctx.moveTo(q[0], q[1]);
    ctx.lineTo(q[0] - len * Math.cos(ang - 0.4), q[1] - len * Math.sin(ang - 0.4));
    ctx.lineTo(q[0] - len * Math.cos(ang + 0.4), q[1] - len * Math.sin(ang + 0.4));
    ctx.closePath(); ctx.fill();
  }
  function dot(p, r, fill, stroke) {
    var q = px(p);
    ctx.beginPath(); ctx.arc(q[0], q[1], r, 0, 2 * Math.PI);
    if (fill) { ctx.fillStyle = fill; ctx.fill(); }
    if (stroke) { ctx.strokeStyle = stroke; ctx.lineWidth = 2; ctx.stroke(); }
  }
  function square(p, r, fill) {
    var q = px(p);
    ctx.fillStyle = fill; ctx.strokeStyle = "#000000"; ctx.lineWidth = 1.2;
    ctx.beginPath(); ctx.rect(q[0] - r, q[1] - r, 2 * r, 2 * r); ctx.fill(); ctx.stroke();
  }

  /* ---------- images (optional) ---------- */
  var img = null;
  if (D.images) {
    var raw = atob(D.images.paths), rawJ = atob(D.images.jumps);
    var shape = D.images.shape, size = shape[0] * shape[1] * shape[2];
    img = { shape: shape, size: size, paths: raw, jumps: rawJ, canvases: [] };
    ["x_s", "jump", "true x_t"].forEach(function (name) {
      var fig = el("figure", "fx-thumb");
      var c = el("canvas"); c.width = shape[2]; c.height = shape[1];
      fig.appendChild(c); fig.appendChild(el("figcaption", null, name));
      imagesBox.appendChild(fig); img.canvases.push(c);
    });
  }
  function paintImage(c, raw, offset) {
    var shape = img.shape, n = shape[1] * shape[2], g = c.getContext("2d");
    var data = g.createImageData(shape[2], shape[1]);
    for (var i = 0; i < n; i++) {
      var r, gg, b;
      if (shape[0] === 3) {
        r = raw.charCodeAt(offset + i); gg = raw.charCodeAt(offset + n + i); b = raw.charCodeAt(offset + 2 * n + i);
      } else { r = gg = b = 255 - raw.charCodeAt(offset + i); }
      data.data[4 * i] = r; data.data[4 * i + 1] = gg; data.data[4 * i + 2] = b; data.data[4 * i + 3] = 255;
    }
    g.putImageData(data, 0, 0);
  }

  /* ---------- drawing ---------- */
  var draws = 0;
  function selected() { return pathChecks.filter(function (b) { return b.checked; }).map(function (b) { return +b.dataset.index; }); }
  function draw() {
    var si = +sCtl.input.value, ti = +tCtl.input.value, s = D.times[si], t = D.times[ti];
    sCtl.out.textContent = s.toFixed(2); tCtl.out.textContent = t.toFixed(2);
    drawAxes();
    if (D.mode === "1d") {
      line([[s, lo[1]], [s, hi[1]]], "#bbbbbb", 1, [2, 3]);
      line([[t, lo[1]], [t, hi[1]]], "#bbbbbb", 1, [2, 3]);
    }
    var sel = selected();
    if (showAll.checked) for (var p = 0; p < P; p++) line(D.paths[p], GREY, 0.8);
    if (showCloud.checked) for (var q = 0; q < P; q++) dot(D.paths[q][si], 1.8, CLOUD);
    sel.forEach(function (h) { line(D.paths[D.path_ids[h]], D.colors[h], 2.2); });
    sel.forEach(function (h) {
      var path = D.paths[D.path_ids[h]], xs = path[si], xt = path[ti], xj = D.jumps[h][si][ti];
      if (showTrue.checked) dot(xt, 7, null, D.colors[h]);
      if (showTangent.checked && D.tangents) {
        var dt = Math.abs(t - s) < 0.05 ? (t >= s ? 0.05 : -0.05) : t - s, v = D.tangents[h][si];
        arrow(xs, [xs[0] + dt * v[0], xs[1] + dt * v[1]], DARK, 1.6);
      }
      if (showJump.checked) { arrow(xs, xj, "#000000", 1.4, [5, 4]); square(xj, 4.5, D.colors[h]); }
      dot(xs, 5, D.colors[h], "#ffffff");
    });
    writeReadout(sel, si, ti, s, t);
    draws += 1;
    root.dataset.draws = draws; root.dataset.s = s; root.dataset.t = t;
  }
  function writeReadout(sel, si, ti, s, t) {
    var rows = ["<b>s = " + s.toFixed(2) + ", t = " + t.toFixed(2) + "</b>" + (t < s ? " (backwards: data \u2192 noise)" : "")];
    if (sel.length === 0) { readout.innerHTML = rows[0] + "<br>Tick a highlighted path below."; return; }
    var h = sel[0], err = D.errors[h][si][ti];
    rows.push("path #" + (D.path_ids[h] + 1) + ':');
    if (D.values) {
      var x = D.values.x[h][si], X = D.values.jump[h][si][ti], xt = D.values.x[h][ti];
      rows.push("x<sub>s</sub> = " + vec(x));
      if (D.values.b) rows.push("b<sub>s</sub>(x<sub>s</sub>) = " + vec(D.values.b[h][si]));
      rows.push("jump = " + vec(X));
      rows.push("true x<sub>t</sub> = " + vec(xt));
      if (ti !== si) rows.push("average velocity v<sub>s,t</sub> = " + vec(X.map(function (v, i) { return (v - x[i]) / (t - s); })));
    }
    rows.push("jump error |jump \u2212 x<sub>t</sub>| = <span class='fx-error'>" + err.toExponential(2) + "</span>");
    var total = 0; sel.forEach(function (k) { total += D.errors[k][si][ti]; });
    if (sel.length > 1) rows.push("mean error over " + sel.length + " paths = " + (total / sel.length).toExponential(2));
    readout.innerHTML = rows.join("<br>");
    if (img) {
      var size = img.size;
      paintImage(img.canvases[0], img.paths, (h * G + si) * size);
      paintImage(img.canvases[1], img.jumps, ((h * G + si) * G + ti) * size);
      paintImage(img.canvases[2], img.paths, (h * G + ti) * size);
    }
  }

  /* ---------- interaction ---------- */
  var timer = null;
  function stop() { if (timer) { clearInterval(timer); timer = null; } play.textContent = "\u25B6 play"; root.dataset.playing = "0"; }
  play.addEventListener("click", function () {
    if (timer) { stop(); return; }
    play.textContent = "\u275A\u275A pause"; root.dataset.playing = "1";
    timer = setInterval(function () {
      if (!document.body.contains(root)) { stop(); return; }
      var ctl = animate.value === "s" ? sCtl : tCtl;
      ctl.input.value = (+ctl.input.value + 1) % G;
      draw();
    }, 140);
  });
  [sCtl.input, tCtl.input].forEach(function (i) { i.addEventListener("input", draw); });
  [showTangent, showJump, showTrue, showAll, showCloud].concat(pathChecks)
    .forEach(function (b) { b.addEventListener("change", draw); });
  canvas.addEventListener("click", function (ev) {  // click near a highlighted x_s to select that path alone
    var r = canvas.getBoundingClientRect(), mx = (ev.clientX - r.left) * W / r.width, my = (ev.clientY - r.top) * Hh / r.height;
    var si = +sCtl.input.value, best = -1, bestD = 14;
    for (var h = 0; h < H; h++) {
      var q = px(D.paths[D.path_ids[h]][si]), d = Math.hypot(q[0] - mx, q[1] - my);
      if (d < bestD) { bestD = d; best = h; }
    }
    if (best >= 0) { pathChecks.forEach(function (b, k) { b.checked = k === best; }); draw(); }
  });
  draw();
}
