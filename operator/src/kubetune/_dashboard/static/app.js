// kubetune dashboard: fetches JSON from its own server and redraws when the server-sent
// event stream says a study changed. No timers poll the cluster.
(function () {
  "use strict";
  var root = document.body.getAttribute("data-root");
  var page = document.body.getAttribute("data-page");

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") e.textContent = attrs[k];
      else if (k === "cls") e.className = attrs[k];
      else e.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) e.appendChild(c); });
    return e;
  }
  function td(text, cls) { return el("td", {text: text == null ? "" : String(text), cls: cls || ""}); }
  function badge(word) { return el("span", {cls: "badge s-" + word, text: word}); }
  function getJSON(path) {
    return fetch(root + path, {cache: "no-store"}).then(function (r) {
      if (!r.ok) return r.text().then(function (t) { throw new Error(t || r.statusText); });
      return r.json();
    });
  }
  function age(seconds) {
    if (seconds == null) return "-";
    var s = Math.max(0, Math.round(seconds));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h" + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + "m";
    return Math.floor(s / 86400) + "d" + String(Math.floor(s % 86400 / 3600)).padStart(2, "0") + "h";
  }
  function problems(list) {
    var box = document.getElementById("problems");
    box.replaceChildren.apply(box, (list || []).map(function (p) {
      return el("div", {cls: "problem", text: p});
    }));
  }
  function progress(done, max) {
    var frac = max ? Math.min(1, done / max) : 0;
    var bar = el("span", {cls: "bar"}, [el("span", {style: "width:" + (100 * frac).toFixed(1) + "%"})]);
    return el("td", {}, [bar, document.createTextNode(max ? done + "/" + max : String(done))]);
  }

  // One EventSource per page; a burst of changes arrives as one message (the server coalesces).
  function live(onChange) {
    var dot = document.getElementById("live");
    var source = new EventSource(root + "api/stream");
    source.onopen = function () { dot.textContent = "live"; dot.classList.add("on"); };
    source.onerror = function () { dot.textContent = "reconnecting"; dot.classList.remove("on"); };
    source.addEventListener("change", function (e) { onChange(JSON.parse(e.data)); });
  }
  // Redraw at most one at a time; a change during a redraw schedules one more.
  function serial(fn) {
    var running = false, again = false;
    return function run() {
      if (running) { again = true; return; }
      running = true;
      Promise.resolve(fn()).catch(function (e) { problems([String(e.message || e)]); })
        .then(function () { running = false; if (again) { again = false; run(); } });
    };
  }

  // --- the studies list ----------------------------------------------------------------------
  function indexPage() {
    var body = document.querySelector("#studies tbody");
    var draw = serial(function () {
      return getJSON("api/studies").then(function (data) {
        problems(data.problems);
        document.getElementById("none").hidden = data.studies.length > 0;
        body.replaceChildren.apply(body, data.studies.map(function (s) {
          var href = root + "studies/" + encodeURIComponent(s.namespace) + "/" + encodeURIComponent(s.name);
          var link = el("a", {href: href, text: s.name, cls: "study-link"});
          var tr = el("tr", {"data-study": s.namespace + "/" + s.name}, [
            td(s.namespace), el("td", {}, [link]), el("td", {title: s.message}, [badge(s.status)]),
            progress(s.done, s.maxTrials), td(s.running, "num"),
            td(s.best == null ? "-" : s.bestText + (s.bestTrial == null ? "" : "  (#" + s.bestTrial + ")"), "num"),
            td(s.metric + (s.direction ? " (" + s.direction.slice(0, 3) + ")" : "")),
            td(s.algorithm), td(s.age)]);
          tr.addEventListener("click", function (e) { if (e.target.tagName !== "A") location.href = href; });
          return tr;
        }));
      });
    });
    draw();
    live(draw);
  }

  // --- one study ------------------------------------------------------------------------------
  function studyPage() {
    var parts = location.pathname.split("/").filter(Boolean);
    var ns = decodeURIComponent(parts[parts.length - 2]);
    var name = decodeURIComponent(parts[parts.length - 1]);
    var key = ns + "/" + name;
    var base = "api/studies/" + encodeURIComponent(ns) + "/" + encodeURIComponent(name);
    var sort = {key: "rank", desc: false};
    var config = {responsive: true, displaylogo: false, modeBarButtonsToRemove: ["lasso2d", "select2d"]};
    document.title = "kubetune: " + name;
    document.getElementById("crumb").textContent = ns + " / " + name;

    // plotly.js loads beside the study's data (it takes longer to evaluate than the data takes
    // to come), so the summary and the tables are drawn first and the charts once it is ready.
    var plotly = new Promise(function (resolve, reject) {
      var script = document.getElementById("plotly-js");
      function failed() { reject(new Error("plotly.js did not load from " + script.src + "; reload the page")); }
      if (window.Plotly) resolve();
      else if (script.failed) failed();
      else { script.addEventListener("load", resolve); script.addEventListener("error", failed); }
    });
    plotly.then(function () {
      Object.keys(visible).forEach(function (id) {
        var box = document.getElementById(id);
        if (visible[id] && box.pending) draw1(box);
      });
    }, function (e) { problems([e.message]); });

    // A chart is drawn when it scrolls into view (and redrawn there on updates): parallel
    // coordinates are WebGL, the slowest to draw, and below the fold.
    var visible = {};
    var observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) {
        visible[e.target.id] = e.isIntersecting;
        if (e.target.id === "importance" && e.isIntersecting && importanceWanted) askImportance();
        if (e.isIntersecting && e.target.pending) draw1(e.target);
      });
    }, {rootMargin: "200px"});
    var importanceBox = document.getElementById("importance");
    observer.observe(importanceBox);
    importanceBox.observed = true;
    function draw1(box) {
      if (!window.Plotly) return;
      var fig = box.pending;
      box.pending = null;
      if (box.firstChild && !box.data) box.replaceChildren();
      Plotly.react(box, fig.data, fig.layout, config);
    }
    function figure(id, fig, empty) {
      var box = document.getElementById(id);
      if (!box.observed) { observer.observe(box); box.observed = true; }
      if (!fig) {
        box.pending = null;
        if (box.data && window.Plotly) Plotly.purge(box);
        box.replaceChildren(el("p", {cls: "empty", text: empty || ""}));
        return;
      }
      box.pending = fig;
      if (visible[id]) draw1(box);
    }
    function summary(d) {
      var s = d.summary, box = document.getElementById("summary");
      function kv(k, v, id) { return el("div", {}, [el("div", {cls: "k", text: k}), el("div", {cls: "v", text: v, id: id || ""})]); }
      var counts = d.counts;
      box.replaceChildren(
        el("div", {}, [el("div", {cls: "title", text: s.name}), el("div", {cls: "msg", text: s.message || d.problem || ""})]),
        el("div", {}, [el("div", {cls: "k", text: "status"}), badge(s.status)]),
        el("div", {}, [el("div", {cls: "k", text: "progress"}), el("table", {}, [el("tr", {}, [progress(s.done, s.maxTrials)])])]),
        kv("best " + d.objective.metric, d.best ? d.best.valueText + "  (#" + d.best.number + ")" : "-", "best"),
        kv("trials", d.trials + "  (" + counts.Running + " running, " + counts.Pruned + " pruned, " + counts.Failed + " failed)", "trial-count"),
        kv("algorithm", (d.algorithm || "-") + (d.earlyStopping ? " + " + d.earlyStopping : "")),
        kv("age", s.age));
    }
    function notes(d) {
      var shown = d.shown;
      document.getElementById("history-note").textContent = shown.history < shown.valued ?
        shown.history + " of " + shown.valued + " trials: every improvement, the best and an even spread" : "";
      document.getElementById("curves-note").textContent = shown.curves < shown.withCurves ?
        "The " + shown.curves + " best and latest of " + shown.withCurves + " curves; pruned trials dashed, an x where they stopped" :
        "Pruned trials dashed, an x where they stopped";
      document.getElementById("parallel-note").textContent = "Succeeded trials (the best 1000), coloured by " + d.objective.metric;
      var front = d.pareto;
      document.getElementById("pareto-card").hidden = !front;
      if (front) {
        document.getElementById("pareto-note").textContent = front.frontSize + " trials on the front of " +
          front.objectives.join(", ") + (front.hypervolume == null ? "" : "; hypervolume " + front.hypervolume.toPrecision(4)) +
          ". The charts below follow " + d.objective.metric + ". " + front.note;
      }
    }
    function tables(d) {
      var cbody = document.querySelector("#conditions tbody");
      cbody.replaceChildren.apply(cbody, d.conditions.map(function (c) {
        return el("tr", {}, [td(c.type), td(c.status), td(c.reason), td(c.message)]);
      }));
      var ebody = document.querySelector("#events tbody");
      ebody.replaceChildren.apply(ebody, d.events.map(function (e) {
        return el("tr", {}, [td(e.time == null ? "-" : age(d.now - e.time)), td(e.type), td(e.reason), td(e.message)]);
      }));
    }
    var params = [];
    function header() {
      var cols = [["rank", "rank"], ["number", "trial"], ["value", "value"], ["state", "state"]]
        .concat(params.map(function (p) { return [null, p]; }))
        .concat([["duration", "duration"], ["start", "started"], [null, "log"]]);
      var row = el("tr", {}, cols.map(function (c) {
        var th = el("th", {text: c[1]});
        if (c[0]) {
          th.className = "sortable" + (sort.key === c[0] ? " sorted" + (sort.desc ? " desc" : "") : "");
          th.setAttribute("data-sort", c[0]);
          th.addEventListener("click", function () {
            sort = {key: c[0], desc: sort.key === c[0] ? !sort.desc : false};
            drawTrials();
          });
        }
        return th;
      }));
      document.querySelector("#trials thead").replaceChildren(row);
    }
    // The rows in the order asked for; an answer for an order clicked away meanwhile is dropped.
    function fetchTrials() {
      var asked = sort;
      return getJSON(base + "/trials?sort=" + asked.key + "&desc=" + (asked.desc ? 1 : 0))
        .then(function (t) { return asked === sort ? t : null; });
    }
    var drawTrials = serial(function () { return fetchTrials().then(showTrials); });
    function showTrials(t) {
      if (!t) return;
      header();
      var now = Date.now() / 1000;
      var body = document.querySelector("#trials tbody");
      body.replaceChildren.apply(body, t.rows.map(function (r) {
        var log = r.pod ? el("a", {href: root + "logs/" + encodeURIComponent(ns) + "/" + encodeURIComponent(r.pod),
                                   target: "_blank", cls: "log-link", text: "log"}) : null;
        var state = el("td", {title: r.message || ""}, [badge(r.state)]);
        if (r.reason && r.state !== "Succeeded" && r.state !== "Running") state.appendChild(document.createTextNode(" " + r.reason));
        return el("tr", {"data-trial": String(r.number)}, [
          td(r.rank == null ? "" : r.rank, "num"), td(r.number, "num"), td(r.valueText, "num"), state]
          .concat(params.map(function (p) { return td(r.params[p], "num"); }))
          .concat([td(r.durationText, "num"), td(r.start == null ? "-" : age(now - r.start) + " ago"), el("td", {}, [log])]));
      }));
      document.getElementById("trials-note").textContent = t.rows.length < t.total ?
        "The first " + t.rows.length + " of " + t.total + " trials in this order; click a column to sort" :
        t.total + " trials; click a column to sort";
      askImportance();
    }
    // Importance is the slow part (a GP fit on the server): asked for only once its chart is
    // in view and plotly.js is ready, so that the fit never holds up the first screen.
    var importanceWanted = false;
    function askImportance() {
      importanceWanted = !visible.importance;
      if (visible.importance) plotly.then(drawImportance);
    }
    var drawImportance = serial(function () {
      return getJSON(base + "/importance").then(function (d) {
        document.getElementById("importance-note").textContent = d.note || "";
        figure("importance", d.figure, d.empty);
      });
    });
    // The study and its rows are asked for together; the rows are drawn once the study has
    // given the table its columns.
    var draw = serial(function () {
      var rows = fetchTrials();
      return getJSON(base).then(function (d) {
        problems(d.problems);
        params = d.params;
        summary(d); notes(d); tables(d);
        ["pareto", "history", "curves", "parallel"].forEach(function (k) {
          if (k in d.figures) figure(k, d.figures[k], d.empty[k]);
        });
        return rows.then(showTrials);
      });
    });
    draw();
    live(function (m) { if (m.studies.indexOf(key) >= 0) draw(); });
  }

  if (page === "index") indexPage(); else studyPage();
})();
