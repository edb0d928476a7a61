/* Flow-map explorer for a 2D Gaussian mixture (flowlib.explorer.explore_mixture).
 * The exact velocity is evaluated here from the mixture's parameters (weights, means, eigen-decomposed
 * covariances) and the exact flow map integrates it with RK4, as flowlib.exact.GaussianMixture does: any start
 * point, any times, no kernel and no grid. Learned maps (D.learned_names, a menu picks one) arrive as dense
 * precomputed fields D.learned[i] = {jumps[is][it][iy][ix], tangents[is][iy][ix]}, interpolated (bilinear in space,
 * bilinear in (s, t)), or live from a kernel: `live` is {ask(query), onAnswer(callback)} (flowlib.explorer's widget),
 * and the kernel answers each query {key, model, x, s, t, u} with {key, end, mid, via, tangent, ahead} or {key, error}.
 * With D.reward the look-ahead from x at time s is drawn: the exact posterior, its mean, X_s,1(x) and the reward. */
function flowlibMixtureExplorer(root, live) {
  "use strict";
  if (!root || root.dataset.ready === "1") return;
  root.dataset.ready = "1";
  var D = JSON.parse(root.querySelector(".fx-data").textContent);
  var K = D.weights.length, L = D.extent, STEPS = D.steps_per_unit;
  var C = { path: "#0072B2", point: "#E69F00", jump: "#000000", learned: "#D55E00", via: "#009E73", cloud: "#bbbbbb",
            denoiser: "#CC79A7", posterior: "#56B4E9" };

  /* ---------- the exact mixture ---------- */
  function coefficients(t) {  // alpha, beta and their derivatives (the interpolants of flowlib.interpolants)
    if (D.interpolant === "trigonometric") {
      var h = 0.5 * Math.PI;
      return [Math.cos(h * t), Math.sin(h * t), -h * Math.sin(h * t), h * Math.cos(h * t)];
    }
    return [1 - t, t, -1, 1];
  }
  function velocity(x, t) {
    var ab = coefficients(t), a = ab[0], b = ab[1], da = ab[2], db = ab[3];
    var logs = [], per = [], top = -Infinity;
    for (var k = 0; k < K; k++) {
      var m = D.means[k], V = D.eigenvectors[k], lam = D.eigenvalues[k];
      var c0 = x[0] - b * m[0], c1 = x[1] - b * m[1];
      var log = Math.log(D.weights[k]) - Math.log(2 * Math.PI), out = [db * m[0], db * m[1]];
      for (var e = 0; e < 2; e++) {
        var z = V[0][e] * c0 + V[1][e] * c1, c = a * a + b * b * lam[e];
        log -= 0.5 * (z * z / c + Math.log(c));
        var coord = z * (da * a + db * b * lam[e]) / c;
        out[0] += V[0][e] * coord; out[1] += V[1][e] * coord;
      }
      logs.push(log); per.push(out); top = Math.max(top, log);
    }
    var total = 0, v = [0, 0];
    for (k = 0; k < K; k++) { var w = Math.exp(logs[k] - top); total += w; v[0] += w * per[k][0]; v[1] += w * per[k][1]; }
    return [v[0] / total, v[1] / total];
  }
  function flowMap(x, s, t) {  // RK4, ceil(STEPS |t - s|) steps, like GaussianMixture.flow_map
    var n = Math.max(1, Math.ceil(STEPS * Math.abs(t - s))), h = (t - s) / n, y = [x[0], x[1]];
    if (t === s) return y;
    for (var i = 0; i < n; i++) {
      var r = s + i * h;
      var k1 = velocity(y, r);
      var k2 = velocity([y[0] + 0.5 * h * k1[0], y[1] + 0.5 * h * k1[1]], r + 0.5 * h);
      var k3 = velocity([y[0] + 0.5 * h * k2[0], y[1] + 0.5 * h * k2[1]], r + 0.5 * h);
      var k4 = velocity([y[0] + h * k3[0], y[1] + h * k3[1]], r + h);
      y = [y[0] + h * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0]) / 6, y[1] + h * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1]) / 6];
    }
    return y;
  }

  /* ---------- the look-ahead from x at time s: the exact posterior p(x_1 | x_s = x), its mean, the reward ---------- */
  // Per component k: P(k | x_s = x) and, along its covariance's eigenvectors, the posterior's mean
  // z b lam / c and standard deviation sqrt(lam a^2 / c), with c = a^2 + b^2 lam (flowlib.exact.posterior_sample).
  function posteriorParts(x, s) {
    var ab = coefficients(s), a = ab[0], b = ab[1], parts = [], top = -Infinity, total = 0;
    for (var k = 0; k < K; k++) {
      var m = D.means[k], V = D.eigenvectors[k], lam = D.eigenvalues[k];
      var c0 = x[0] - b * m[0], c1 = x[1] - b * m[1], log = Math.log(D.weights[k]), mean = [m[0], m[1]], sd = [0, 0];
      for (var e = 0; e < 2; e++) {
        var z = V[0][e] * c0 + V[1][e] * c1, c = a * a + b * b * lam[e];
        log -= 0.5 * (z * z / c + Math.log(c));
        mean[0] += V[0][e] * z * b * lam[e] / c; mean[1] += V[1][e] * z * b * lam[e] / c;
        sd[e] = Math.sqrt(lam[e] * a * a / c);
      }
      parts.push({ log: log, mean: mean, sd: sd, V: V }); top = Math.max(top, log);
    }
    parts.forEach(function (part) { part.weight = Math.exp(part.log - top); total += part.weight; });
    parts.forEach(function (part) { part.weight /= total; });
    return parts;
  }
  function denoiser(x, s) {  // D_s(x) = E[x_1 | x_s = x], the posterior's mean
    var out = [0, 0];
    posteriorParts(x, s).forEach(function (part) { out[0] += part.weight * part.mean[0]; out[1] += part.weight * part.mean[1]; });
    return out;
  }
  var DRAWS = (function () {  // fixed uniforms and standard normals, so the posterior's draws move smoothly with x and s
    var state = 20240607, out = [];
    function uniform() {  // mulberry32: 32-bit integer arithmetic, the same stream in every browser
      state = (state + 0x6D2B79F5) | 0;
      var h = Math.imul(state ^ (state >>> 15), 1 | state);
      h = (h + Math.imul(h ^ (h >>> 7), 61 | h)) ^ h;
      return (((h ^ (h >>> 14)) >>> 0) + 0.5) / 4294967296;
    }
    for (var j = 0; j < 4096; j++) {
      var r = Math.sqrt(-2 * Math.log(uniform())), angle = 2 * Math.PI * uniform();
      out.push({ u: uniform(), n: [r * Math.cos(angle), r * Math.sin(angle)] });
    }
    return out;
  })();
  function posteriorSamples(x, s, n) {  // n exact draws of x_1 ~ p(x_1 | x_s = x)
    var parts = posteriorParts(x, s), out = [];
    for (var j = 0; j < n; j++) {
      var d = DRAWS[j % DRAWS.length], k = 0, cumulative = parts[0].weight;
      while (d.u > cumulative && k < K - 1) { k += 1; cumulative += parts[k].weight; }
      var part = parts[k], c0 = part.sd[0] * d.n[0], c1 = part.sd[1] * d.n[1];
      out.push([part.mean[0] + part.V[0][0] * c0 + part.V[0][1] * c1, part.mean[1] + part.V[1][0] * c0 + part.V[1][1] * c1]);
    }
    return out;
  }
  var R = D.reward || null;  // the reward on a grid of the view: {values[iy][ix], strength, label}
  function rewardAt(p) {  // bilinear on the grid
    var n = R.values.length, cx = cellOf(p[0], -L, L, n), cy = cellOf(p[1], -L, L, n), out = 0;
    [[0, 0], [0, 1], [1, 0], [1, 1]].forEach(function (o) {
      out += (o[0] ? cy[1] : 1 - cy[1]) * (o[1] ? cx[1] : 1 - cx[1]) * R.values[cy[0] + o[0]][cx[0] + o[1]];
    });
    return out;
  }
  function logValue(x, s, n) {  // log h_s(x) = log E[exp(lambda r(x_1)) | x_s = x], by n exact posterior draws
    var logs = posteriorSamples(x, s, n).map(function (p) { return R.strength * rewardAt(p); });
    var top = Math.max.apply(null, logs), total = 0;
    logs.forEach(function (v) { total += Math.exp(v - top); });
    return top + Math.log(total / n);
  }
  function cellOf(value, lo, hi, n) {  // index and weight of value on a uniform grid of n points from lo to hi
    var p = Math.min(Math.max((value - lo) / (hi - lo) * (n - 1), 0), n - 1);
    var i = Math.min(Math.floor(p), n - 2);
    return [i, p - i];
  }

  /* ---------- the learned map: a precomputed field ---------- */
  var FIELDS = D.learned || [], NAMES = D.learned_names || [], LIVE = live || null;
  var F = FIELDS[0] || null, chosen = 0, HAS_LEARNED = NAMES.length > 0 && !!(F || LIVE), answer = null, inFlight = false;
  var cell = cellOf;
  function spatial(table, x) {  // bilinear in space: table[iy][ix] -> [2]
    var n = F.grid, cx = cell(x[0], -L, L, n), cy = cell(x[1], -L, L, n), out = [0, 0];
    [[0, 0], [0, 1], [1, 0], [1, 1]].forEach(function (o) {
      var w = (o[0] ? cy[1] : 1 - cy[1]) * (o[1] ? cx[1] : 1 - cx[1]), p = table[cy[0] + o[0]][cx[0] + o[1]];
      out[0] += w * p[0]; out[1] += w * p[1];
    });
    return out;
  }
  function learnedJump(x, s, t) {
    var G = F.times.length, cs = cell(s, 0, 1, G), ct = cell(t, 0, 1, G), out = [0, 0];
    [[0, 0], [0, 1], [1, 0], [1, 1]].forEach(function (o) {
      var w = (o[0] ? cs[1] : 1 - cs[1]) * (o[1] ? ct[1] : 1 - ct[1]);
      if (w === 0) return;
      var p = spatial(F.jumps[cs[0] + o[0]][ct[0] + o[1]], x);
      out[0] += w * p[0]; out[1] += w * p[1];
    });
    return out;
  }
  function learnedTangent(x, s) {
    var G = F.times.length, cs = cell(s, 0, 1, G), a = spatial(F.tangents[cs[0]], x), b = spatial(F.tangents[cs[0] + 1], x);
    return [(1 - cs[1]) * a[0] + cs[1] * b[0], (1 - cs[1]) * a[1] + cs[1] * b[1]];
  }
  function learnedFromField(x, s, t, u) {
    var mid = learnedJump(x, s, u);
    return { end: learnedJump(x, s, t), mid: mid, via: learnedJump(mid, u, t), tangent: learnedTangent(x, s),
             ahead: learnedJump(x, s, 1) };
  }

  /* ---------- the learned map: live, asked of the kernel ---------- */
  // The kernel's answer for this point and these times. One query is in flight at a time; while it is, the last
  // answer is drawn marked stale (so play and dragging stay smooth), and each answer asks again if x, s, t or u moved.
  function learnedFromKernel(x, s, t, u) {
    var key = [NAMES[chosen], x[0], x[1], s, t, u].join(",");
    if (answer && answer.key === key) return answer;
    if (!inFlight) { inFlight = true; LIVE.ask({ key: key, model: NAMES[chosen], x: x.slice(), s: s, t: t, u: u }); }
    return answer ? Object.assign({}, answer, { stale: true }) : null;
  }
  if (LIVE) LIVE.onAnswer(function (reply) { inFlight = false; answer = reply; draw(); });

  /* ---------- layout and controls ---------- */
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  if (D.title) root.appendChild(el("div", "fx-title", D.title));
  var main = el("div", "fx-main"), canvas = el("canvas", "fx-canvas"), side = el("div", "fx-side");
  canvas.tabIndex = 0;
  canvas.setAttribute("role", "application");
  canvas.setAttribute("aria-label", "The plane at time s. Click, or use the arrow keys, to place the point x; " +
    "its exact path, its tangent, the jump to time t and the two jumps through time u are drawn.");
  var readout = el("div", "fx-readout");
  readout.setAttribute("aria-live", "polite");
  side.appendChild(el("div", "fx-legend")).innerHTML =
    "<div><span class='fx-key fx-key-path'></span>exact path through x</div>" +
    "<div><span class='fx-key fx-key-dot'></span>x at time s, with its tangent</div>" +
    "<div><span class='fx-key fx-key-jump'></span>jump X<sub>s,t</sub>(x)</div>" +
    "<div><span class='fx-key' style='border-top:2px dotted " + C.via + ";height:0'></span>via u: X<sub>u,t</sub>(X<sub>s,u</sub>(x))</div>" +
    (R ? "<div><span class='fx-key' style='background:" + C.denoiser + ";width:9px;height:9px'></span>denoiser D<sub>s</sub>(x)</div>" +
         "<div><span class='fx-key' style='background:" + C.posterior + ";width:9px;height:9px;border-radius:50%'></span>" +
         "exact draws of p(x<sub>1</sub> | x<sub>s</sub> = x)</div><div>shading: the reward " + (R.label || "r") + "</div>" : "") +
    (HAS_LEARNED ? "<div><span class='fx-key' style='border-top:2px solid " + C.learned + ";height:0'></span>learned jump and tangent</div>" : "");
  side.appendChild(readout);
  main.appendChild(canvas); main.appendChild(side); root.appendChild(main);
  var controls = el("div", "fx-controls");
  function slider(name, value, label) {
    var box = el("label", "fx-slider");
    box.appendChild(el("span", "fx-slider-name", name));
    var input = el("input", "fx-" + name);
    input.type = "range"; input.min = 0; input.max = 1; input.step = 0.001; input.value = value;
    input.setAttribute("aria-label", label);
    var out = el("output", "fx-" + name + "-value");
    box.appendChild(input); box.appendChild(out); controls.appendChild(box);
    input.addEventListener("input", draw);
    return input;
  }
  var sIn = slider("s", D.s, "start time s"), tIn = slider("t", D.t, "end time t"), uIn = slider("u", D.u, "intermediate time u");
  var play = el("button", "fx-play", "\u25B6 play t");
  play.type = "button";
  controls.appendChild(play);
  root.appendChild(controls);
  var toggles = el("div", "fx-toggles");
  function toggle(cls, text, on) {
    var label = el("label"), box = el("input", cls);
    box.type = "checkbox"; box.checked = on;
    label.appendChild(box); label.appendChild(document.createTextNode(" " + text)); toggles.appendChild(label);
    box.addEventListener("change", draw);
    return box;
  }
  var showVia = toggle("fx-show-via", "compose through u", true), showCloud = toggle("fx-show-cloud", "samples at s", true);
  var showLearned = HAS_LEARNED ? toggle("fx-show-learned", "learned map", true) : { checked: false };
  var showAhead = R ? toggle("fx-show-ahead", "look-ahead to t = 1", true) : { checked: false };
  if (HAS_LEARNED && NAMES.length > 1) {  // several learned maps: a menu picks the one drawn
    var menu = el("select", "fx-model");
    menu.setAttribute("aria-label", "which learned map is drawn");
    NAMES.forEach(function (name, i) { var option = el("option", null, name); option.value = i; menu.appendChild(option); });
    menu.addEventListener("change", function () { chosen = +menu.value; F = FIELDS[chosen] || null; answer = null; draw(); });
    toggles.appendChild(menu);
  }
  root.appendChild(toggles);
  var source = "Exact map: computed in this page from the mixture's parameters.";
  if (LIVE) source += " Learned map: computed by the running kernel at the point and times you pick (live).";
  else if (F) source += " Learned map: a field precomputed on a " + F.grid + "\u00d7" + F.grid + " grid and " +
    F.times.length + " times, interpolated (a static page; in a running notebook, live=True asks the model itself).";
  root.appendChild(el("div", "fx-source", source));

  /* ---------- drawing ---------- */
  var x = D.start.slice(), ctx = canvas.getContext("2d"), W = 540, H = 420;
  canvas.width = W * 2; canvas.height = H * 2; ctx.scale(2, 2);
  var scale = Math.min(W, H) / (2 * L);
  var shade = R ? (function () {  // the reward as a light shading, drawn once into an image of the grid
    var n = R.values.length, image = document.createElement("canvas"), lo = Infinity, hi = -Infinity;
    image.width = n; image.height = n;
    R.values.forEach(function (row) { row.forEach(function (v) { lo = Math.min(lo, v); hi = Math.max(hi, v); }); });
    var g = image.getContext("2d"), pixels = g.createImageData(n, n);
    for (var iy = 0; iy < n; iy++) for (var ix = 0; ix < n; ix++) {
      var level = (R.values[iy][ix] - lo) / Math.max(hi - lo, 1e-12), o = 4 * ((n - 1 - iy) * n + ix);  // row 0 is the top
      pixels.data[o] = 0; pixels.data[o + 1] = 158; pixels.data[o + 2] = 115; pixels.data[o + 3] = Math.round(90 * level);
    }
    g.putImageData(pixels, 0, 0);
    return image;
  })() : null;
  function px(p) { return [W / 2 + p[0] * scale, H / 2 - p[1] * scale]; }
  function fromPx(u, v) { return [(u - W / 2) / scale, (H / 2 - v) / scale]; }
  function line(points, colour, width, dash) {
    ctx.beginPath(); ctx.strokeStyle = colour; ctx.lineWidth = width; ctx.setLineDash(dash || []);
    points.forEach(function (p, i) { var q = px(p); if (i) ctx.lineTo(q[0], q[1]); else ctx.moveTo(q[0], q[1]); });
    ctx.stroke(); ctx.setLineDash([]);
  }
  function dot(p, colour, r, hollow) {
    var q = px(p); ctx.beginPath(); ctx.arc(q[0], q[1], r, 0, 2 * Math.PI);
    if (hollow) { ctx.strokeStyle = colour; ctx.lineWidth = 2; ctx.stroke(); } else { ctx.fillStyle = colour; ctx.fill(); }
  }
  function distance(a, b) { return Math.hypot(a[0] - b[0], a[1] - b[1]); }
  function fmt(v) { return (Math.abs(v) < 5e-5 ? 0 : v).toFixed(3); }
  function vec(a) { return "(" + fmt(a[0]) + ", " + fmt(a[1]) + ")"; }
  function path(from, s, to, n) {
    var out = [from];
    for (var i = 1; i <= n; i++) out.push(flowMap(out[out.length - 1], s + (to - s) * (i - 1) / n, s + (to - s) * i / n));
    return out;
  }
  var state = {};
  function draw() {
    var s = +sIn.value, t = +tIn.value, u = +uIn.value;
    root.querySelector(".fx-s-value").textContent = s.toFixed(3);
    root.querySelector(".fx-t-value").textContent = t.toFixed(3);
    root.querySelector(".fx-u-value").textContent = u.toFixed(3);
    ctx.clearRect(0, 0, W, H); ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
    if (shade && showAhead.checked) ctx.drawImage(shade, W / 2 - L * scale, H / 2 - L * scale, 2 * L * scale, 2 * L * scale);
    if (showCloud.checked) {
      var ab = coefficients(s);
      D.cloud.forEach(function (pair) { dot([ab[0] * pair[0] + ab[1] * pair[2], ab[0] * pair[1] + ab[1] * pair[3]], C.cloud, 1.6); });
    }
    var back = path(x, s, 0, 40), ahead = path(x, s, 1, 40);
    line(back.reverse().concat(ahead.slice(1)), C.path, 1.6);
    var end = flowMap(x, s, t), mid = flowMap(x, s, u), via = flowMap(mid, u, t), tangent = velocity(x, s);
    state = { x: x, s: s, t: t, u: u, exact_end: end, exact_mid: mid, exact_via: via, exact_tangent: tangent,
              exact_residual: distance(via, end) };
    line([x, end], C.jump, 1.6, [6, 4]);
    if (showVia.checked) { line([x, mid, via], C.via, 1.8, [2, 3]); dot(mid, C.via, 4, true); }
    line([x, [x[0] + 0.15 * tangent[0], x[1] + 0.15 * tangent[1]]], "#333", 2);
    dot(end, C.point, 6, true);
    var text = "x at s = " + s.toFixed(3) + ": " + vec(x) + "\nexact X_s,t(x)      " + vec(end) +
      "\nexact tangent b_s(x) " + vec(tangent) + "\nvia u = " + u.toFixed(3) + ": residual " + state.exact_residual.toExponential(1);
    var got = HAS_LEARNED && showLearned.checked ? (LIVE ? learnedFromKernel(x, s, t, u) : learnedFromField(x, s, t, u)) : null;
    if (HAS_LEARNED && showLearned.checked && !got) {
      text += "\nlearned map: asking the kernel\u2026";
      state.learned_pending = true;
    } else if (got && got.error) {  // the kernel could not evaluate the model: say why
      text += "\nlearned map failed in the kernel: " + got.error;
      state.learned_error_message = got.error;
    } else if (got) {
      var jump = got.end, lmid = got.mid, lvia = got.via, ltan = got.tangent;
      Object.assign(state, { learned_end: jump, learned_via: lvia, learned_tangent: ltan, learned_residual: distance(lvia, jump),
                             learned_error: distance(jump, end), tangent_error: distance(ltan, tangent),
                             learned_source: LIVE ? "kernel" : "field", learned_pending: !!got.stale, learned_model: NAMES[chosen] });
      line([x, jump], C.learned, 1.8);
      if (showVia.checked) line([x, lmid, lvia], C.learned, 1.2, [2, 3]);
      line([x, [x[0] + 0.15 * ltan[0], x[1] + 0.15 * ltan[1]]], C.learned, 1.5, [3, 2]);
      dot(jump, C.learned, 4);
      text += "\n" + NAMES[chosen] + ":\nlearned X_s,t(x)    " + vec(jump) + "\n  error vs exact " + fmt(state.learned_error) +
        "\nlearned tangent     " + vec(ltan) + "\n  error vs exact " + fmt(state.tangent_error) +
        "\nlearned via u: residual " + fmt(state.learned_residual) + (got.stale ? "\n(updating from the kernel\u2026)" : "");
    }
    if (R && showAhead.checked) text += lookAhead(x, s, got && !got.error ? got.ahead : null);
    dot(x, C.point, 5);
    readout.textContent = text;
    root.dataset.state = JSON.stringify(state);
  }
  function lookAhead(x, s, learnedAhead) {  // draws the look-ahead from x at s, returns its lines of the readout
    var draws = posteriorSamples(x, s, 64), mean = denoiser(x, s), ahead = flowMap(x, s, 1), lam = R.strength;
    draws.forEach(function (p) { dot(p, C.posterior, 2.2); });
    var q = px(mean);
    ctx.fillStyle = C.denoiser; ctx.fillRect(q[0] - 4.5, q[1] - 4.5, 9, 9);
    dot(ahead, C.jump, 5, true);
    var logH = logValue(x, s, 1024);
    Object.assign(state, { lookahead_denoiser: mean, lookahead_end: ahead, log_value: logH,
                           plugin_denoiser: lam * rewardAt(mean), plugin_flow_map: lam * rewardAt(ahead) });
    var text = "\nlook-ahead from x at s (lambda = " + lam + "):\n  log h_s(x) ~ " + fmt(logH) + " (1024 exact draws)" +
      "\n  lambda r(D_s(x))     " + fmt(state.plugin_denoiser) + "\n  lambda r(X_s,1(x))   " + fmt(state.plugin_flow_map);
    if (learnedAhead) {
      state.plugin_learned = lam * rewardAt(learnedAhead);
      dot(learnedAhead, C.learned, 4, true);
      text += "\n  lambda r(" + NAMES[chosen] + "'s X_s,1(x)) " + fmt(state.plugin_learned);
    }
    return text;
  }
  canvas.addEventListener("click", function (event) {
    var box = canvas.getBoundingClientRect();
    x = fromPx((event.clientX - box.left) * W / box.width, (event.clientY - box.top) * H / box.height);
    draw();
  });
  canvas.addEventListener("keydown", function (event) {
    var moves = { ArrowLeft: [-0.05, 0], ArrowRight: [0.05, 0], ArrowUp: [0, 0.05], ArrowDown: [0, -0.05] };
    if (!moves[event.key]) return;
    event.preventDefault();
    x = [x[0] + moves[event.key][0], x[1] + moves[event.key][1]];
    draw();
  });
  var timer = null;
  play.addEventListener("click", function () {
    if (timer) { clearInterval(timer); timer = null; play.textContent = "\u25B6 play t"; return; }
    play.textContent = "\u275A\u275A pause";
    tIn.value = sIn.value;
    timer = setInterval(function () {
      var t = +tIn.value + 0.01;
      if (t > 1) t = +sIn.value;
      tIn.value = t; draw();
    }, 40);
  });
  root.flowlib = { velocity: velocity, flowMap: flowMap, learnedJump: F && !LIVE ? learnedJump : null, denoiser: denoiser,
                   posteriorSamples: posteriorSamples, logValue: R ? logValue : null, rewardAt: R ? rewardAt : null,
                   setPoint: function (p) { x = p.slice(); draw(); } };
  draw();
}
