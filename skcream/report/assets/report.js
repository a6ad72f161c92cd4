// skcream report: gallery, threshold slider, sorting, filtering and the enlarged view.
// Everything it needs is in the page (the JSON block #report-data) and the img/ folder.
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var n = data.n, S = data.grid.length, methods = data.methods;

  function bytes(b64) {
    var bin = atob(b64), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  var boxes = {}, scores = {};
  methods.forEach(function (m) {
    boxes[m] = bytes(data.boxes[m]);
    var raw = bytes(data.iou[m]), view = new DataView(raw.buffer), a = new Uint16Array(n * S);
    for (var i = 0; i < n * S; i++) a[i] = view.getUint16(2 * i, true);
    scores[m] = a;
  });
  // bit 15: IoU >= 0.5 (decided in Python, exactly); bits 0-14: round(IoU * 10000)
  function iouAt(m, i, t) { return (scores[m][i * S + t] & 0x7fff) / 10000; }
  function hitAt(m, i, t) { return (scores[m][i * S + t] & 0x8000) !== 0; }
  function boxAt(m, i, t) {
    var o = (i * S + t) * 4, b = boxes[m];
    return [b[o], b[o + 1], b[o + 2], b[o + 3]];
  }
  function pad5(i) { return ("0000" + i).slice(-5); }
  function fmt(x) { return x.toFixed(2); }

  // every map has its own threshold: it starts at the tau of that map in the table
  var state = { tau: {}, judge: data.judge, sort: "iou-asc", cls: "all",
                result: "all", order: [], visible: [], open: -1 };
  methods.forEach(function (m) { state.tau[m] = data.tau[m]; });
  function tauText(m) { return data.grid[state.tau[m]].toFixed(data.digits); }

  // ------------------------------------------------------------------ boxes in SVG
  function origin(k) { return [data.pad + k * (data.panel + data.pad), data.pad]; }
  function rectPair(svg, cls, box, k) {
    var out = [];
    ["halo", cls].forEach(function (c) {
      var r = document.createElementNS(SVG, "rect");
      r.setAttribute("class", c);
      out.push(r);
      svg.appendChild(r);
    });
    placeRects(out, box, k);
    return out;
  }
  function placeRects(rects, box, k) {
    var o = origin(k);
    rects.forEach(function (r) {
      r.setAttribute("x", o[0] + box[0]);
      r.setAttribute("y", o[1] + box[1]);
      r.setAttribute("width", box[2] - box[0] + 1);
      r.setAttribute("height", box[3] - box[1] + 1);
    });
  }
  function frame(i, full) {
    var span = document.createElement("span");
    span.className = "frame";
    var img = document.createElement("img");
    img.src = "img/" + pad5(i) + (full ? ".jpg" : "_t.jpg");
    img.width = full ? data.strip[0] : Math.round(data.strip[0] * data.thumb_scale);
    img.height = full ? data.strip[1] : Math.round(data.strip[1] * data.thumb_scale);
    if (!full) { img.loading = "lazy"; img.decoding = "async"; }
    img.alt = "Image " + data.ids[i] + " (" + data.classes[data.label[i]] + "), then " +
      methods.join(" and ") + " maps over it";
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 " + data.strip[0] + " " + data.strip[1]);
    svg.setAttribute("aria-hidden", "true");
    for (var k = 0; k <= methods.length; k++) {
      data.gt[i].forEach(function (b) { rectPair(svg, "gt", b, k); });
    }
    var preds = {};
    methods.forEach(function (m, j) { preds[m] = rectPair(svg, "pred", boxAt(m, i, state.tau[m]), j + 1); });
    span.appendChild(img);
    span.appendChild(svg);
    return { el: span, preds: preds };
  }
  function mark(ok, yes, no) {
    var s = document.createElement("span");
    s.className = ok ? "hit" : "miss";
    s.textContent = ok ? "\u2713 " + yes : "\u2717 " + no;
    return s;
  }

  // ------------------------------------------------------------------ cards
  var list = document.getElementById("gallery");
  var cards = [];
  function classLine(i) {
    var p = document.createElement("p");
    var id = data.ids[i] === String(i) ? "" : " " + data.ids[i];
    p.appendChild(document.createTextNode("#" + i + id + " \u00b7 true: "));
    var b = document.createElement("b");
    b.textContent = data.classes[data.label[i]];
    p.appendChild(b);
    if (data.pred) {
      p.appendChild(document.createTextNode(" \u00b7 predicted: "));
      var c = document.createElement("b");
      c.textContent = data.classes[data.pred[i]];
      p.appendChild(c);
      p.appendChild(document.createTextNode(" "));
      p.appendChild(mark(data.pred[i] === data.label[i], "class", "class"));
    }
    return p;
  }
  function scoreList(i, into) {
    var ul = document.createElement("ul");
    ul.className = "scores";
    var cells = {};
    methods.forEach(function (m) {
      var li = document.createElement("li");
      li.setAttribute("data-method", m);
      var text = document.createTextNode(""), span = document.createElement("span");
      li.appendChild(text);
      li.appendChild(span);
      ul.appendChild(li);
      cells[m] = { li: li, text: text, mark: span, code: -1 };
    });
    into.appendChild(ul);
    return cells;
  }
  function fillScores(cells, i) {
    methods.forEach(function (m) {
      var c = cells[m], code = scores[m][i * S + state.tau[m]];
      if (code === c.code) return;  // same IoU and hit: nothing to redraw
      c.code = code;
      var ok = (code & 0x8000) !== 0;
      c.text.nodeValue = m + ": IoU " + fmt((code & 0x7fff) / 10000) + " ";
      c.mark.className = ok ? "hit" : "miss";
      c.mark.textContent = ok ? "\u2713 hit" : "\u2717 miss";
      c.li.setAttribute("data-hit", ok ? "1" : "0");
    });
  }
  for (var i = 0; i < n; i++) {
    var li = document.createElement("li");
    li.className = "card";
    li.setAttribute("data-index", String(i));
    var btn = document.createElement("button");
    btn.type = "button";
    btn.className = "open";
    btn.setAttribute("aria-label", "Enlarge image " + data.ids[i]);
    var f = frame(i, false);
    btn.appendChild(f.el);
    li.appendChild(btn);
    li.appendChild(classLine(i));
    var cells = scoreList(i, li);
    cards.push({ li: li, preds: f.preds, cells: cells, drawn: {} });
    btn.addEventListener("click", openViewer.bind(null, i));
  }

  // ------------------------------------------------------------------ controls
  var judge = document.getElementById("judge");
  var sortSel = document.getElementById("sort");
  var clsSel = document.getElementById("class-filter");
  var resSel = document.getElementById("result-filter");
  var sliders = {}, tauOut = {};
  var holder = document.getElementById("sliders");
  methods.forEach(function (m, j) {
    var label = document.createElement("label");
    label.className = "tau";
    label.setAttribute("data-method", m);
    label.htmlFor = "tau-" + j;
    var head = document.createElement("span");
    var sw = document.createElement("span");
    sw.className = "swatch";
    sw.style.background = data.colors[m];
    head.appendChild(sw);
    head.appendChild(document.createTextNode("\u03c4 of " + m + " = "));
    var out = document.createElement("output");
    out.htmlFor = "tau-" + j;
    head.appendChild(out);
    var input = document.createElement("input");
    input.type = "range";
    input.id = "tau-" + j;
    input.min = "0"; input.max = String(S - 1); input.step = "1";
    input.value = String(state.tau[m]);
    input.setAttribute("data-method", m);
    input.setAttribute("aria-label", "Box threshold of " + m);
    input.addEventListener("input", function () { setTau(m, Number(input.value), false); });
    input.addEventListener("change", function () { setTau(m, Number(input.value), true); });
    label.appendChild(head);
    label.appendChild(input);
    holder.appendChild(label);
    sliders[m] = input;
    tauOut[m] = out;
  });
  document.getElementById("tau-reset").addEventListener("click", function () {
    methods.forEach(function (m) { setTau(m, data.tau[m], true); });
  });
  methods.forEach(function (m) {
    var o = document.createElement("option");
    o.value = m; o.textContent = m;
    judge.appendChild(o);
  });
  judge.value = state.judge;
  data.classes.forEach(function (c, k) {
    if (data.label.indexOf(k) < 0) return;
    var o = document.createElement("option");
    o.value = String(k); o.textContent = c;
    clsSel.appendChild(o);
  });

  function hitCount(m, t) {
    var c = 0;
    for (var i = 0; i < n; i++) if (hitAt(m, i, t)) c++;
    return c;
  }
  function updateBoxes() {
    for (var i = 0; i < n; i++) {
      var card = cards[i];
      methods.forEach(function (m, j) {
        var box = boxAt(m, i, state.tau[m]), key = box.join(",");
        if (card.drawn[m] === key) return;  // the box did not move
        card.drawn[m] = key;
        placeRects(card.preds[m], box, j + 1);
      });
      fillScores(card.cells, i);
    }
    methods.forEach(function (m) {
      var t = state.tau[m], h = hitCount(m, t);
      tauOut[m].textContent = tauText(m);
      sliders[m].setAttribute("aria-valuetext", tauText(m));
      var out = document.querySelector('#summary output[data-method="' + m + '"]');
      out.textContent = h + " of " + n + " hits (" + (100 * h / n).toFixed(1) + "%) at \u03c4 " +
        tauText(m);
      out.setAttribute("data-hits", String(h));
      out.setAttribute("data-tau", String(t));
    });
  }
  function arrange() {
    var m = state.judge, t = state.tau[m], idx = [];
    for (var i = 0; i < n; i++) idx.push(i);
    if (state.sort === "iou-asc" || state.sort === "iou-desc") {
      var sign = state.sort === "iou-asc" ? 1 : -1;
      idx.sort(function (a, b) {
        var d = sign * (scores[m][a * S + t] & 0x7fff) - sign * (scores[m][b * S + t] & 0x7fff);
        return d !== 0 ? d : a - b;
      });
    }
    var visible = [], same = state.order.length === n;
    idx.forEach(function (i, k) {
      var show = (state.cls === "all" || String(data.label[i]) === state.cls) &&
        (state.result === "all" || (state.result === "hit") === hitAt(m, i, t));
      if (cards[i].li.hidden === show) cards[i].li.hidden = !show;
      if (show) visible.push(i);
      if (same && state.order[k] !== i) same = false;
    });
    if (!same) {  // move the cards only when the order changed
      var frag = document.createDocumentFragment();
      idx.forEach(function (i) { frag.appendChild(cards[i].li); });
      list.appendChild(frag);
    }
    state.order = idx;
    state.visible = visible;
    var shown = document.getElementById("shown");
    shown.textContent = visible.length + " of " + n;
    shown.setAttribute("data-count", String(visible.length));
  }
  // While the slider is dragged ("input") only boxes, scores and counts follow; the gallery is
  // re-sorted and re-filtered when the value is committed ("change": release, or a key press).
  var pending = false;
  function setTau(m, t, rearrange) {
    state.tau[m] = t;
    sliders[m].value = String(t);
    // the gallery follows the judge's threshold only
    state.rearrange = state.rearrange || (rearrange && m === state.judge);
    if (pending) return;
    pending = true;
    requestAnimationFrame(function () {
      pending = false;
      updateBoxes();
      if (state.rearrange) arrange();
      state.rearrange = false;
      if (state.open >= 0) fillViewer(state.open);
    });
  }
  judge.addEventListener("change", function () { state.judge = judge.value; arrange(); });
  sortSel.addEventListener("change", function () { state.sort = sortSel.value; arrange(); });
  clsSel.addEventListener("change", function () { state.cls = clsSel.value; arrange(); });
  resSel.addEventListener("change", function () { state.result = resSel.value; arrange(); });

  // ------------------------------------------------------------------ enlarged view
  var dialog = document.getElementById("viewer");
  var viewerFrame = document.getElementById("viewer-frame");
  var big = null;
  function fillViewer(i) {
    viewerFrame.textContent = "";
    big = frame(i, true);
    viewerFrame.appendChild(big.el);
    var info = document.getElementById("viewer-info");
    info.textContent = "";
    document.getElementById("viewer-title").textContent = "Image " + data.ids[i] + " \u00b7 \u03c4: " +
      methods.map(function (m) { return m + " " + tauText(m); }).join(", ");
    info.appendChild(classLine(i));
    fillScores(scoreList(i, info), i);
  }
  function openViewer(i) {
    state.open = i;
    fillViewer(i);
    if (!dialog.open) dialog.showModal();
  }
  function step(d) {
    var v = state.visible, k = v.indexOf(state.open);
    if (v.length === 0) return;
    openViewer(v[(k + d + v.length) % v.length]);
  }
  document.getElementById("viewer-prev").addEventListener("click", function () { step(-1); });
  document.getElementById("viewer-next").addEventListener("click", function () { step(1); });
  document.getElementById("viewer-close").addEventListener("click", function () { dialog.close(); });
  dialog.addEventListener("close", function () {
    var card = state.open >= 0 ? cards[state.open] : null;
    state.open = -1;
    if (card) card.li.querySelector("button.open").focus();
  });
  dialog.addEventListener("keydown", function (e) {
    if (e.key === "ArrowLeft") { step(-1); e.preventDefault(); }
    if (e.key === "ArrowRight") { step(1); e.preventDefault(); }
  });

  updateBoxes();
  arrange();
  document.body.setAttribute("data-ready", "1");
})();
