// The reports page's charts, drawn with uPlot from the report's JSON in #report-data
// (a data block, never run: the console's CSP runs script files only).
// One line per name over the intervals for each chart the report names, and a bar
// chart of the first one's totals per name. The form follows its menus at once.
(function () {
  "use strict";

  var PALETTE = ["#1f6feb", "#cf222e", "#1a7f37", "#9a6700", "#6f42c1", "#bc4c00", "#0b7285", "#57606a"];
  var MOST = 8; // names drawn per chart: the largest by their totals

  function show(unit, v) {
    if (v === null || v === undefined || isNaN(v)) return "\u2014";
    if (unit === "percent") return Math.round(v * 1000) / 10 + "%";
    if (unit === "seconds") {
      var s = Math.round(v);
      return s < 60 ? s + " s" : Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
    }
    if (unit === "hours") return (Math.round(v * 10) / 10) + " h";
    if (unit === "count") return String(Math.round(v));
    return String(Math.round(v * 10) / 10);
  }

  function tick(unit, v) {
    if (unit === "percent") return Math.round(v * 100) + "%";
    if (unit === "seconds") return v < 60 ? Math.round(v) + "s" : Math.round(v / 60) + "m";
    if (unit === "hours") return v + "h";
    return String(v);
  }

  // One colour per name on every chart of the page: by the name's place in the totals.
  function colourOf(data, name) {
    for (var i = 0; i < data.totals.length; i++) {
      if (data.totals[i].name === name) return PALETTE[i % PALETTE.length];
    }
    return PALETTE[PALETTE.length - 1];
  }

  // Ticks a person counts in: whole numbers for counts, round shares for percentages.
  function increments(unit) {
    if (unit === "count") return [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000];
    if (unit === "percent") return [0.05, 0.1, 0.2, 0.25, 0.5];
    return undefined;
  }

  function yAxis(unit) {
    var axis = { size: 56, values: function (u, vals) { return vals.map(function (v) { return tick(unit, v); }); } };
    var incrs = increments(unit);
    if (incrs) axis.incrs = incrs;
    return axis;
  }

  // The time axis in 24-hour local time, the day under the first hour of each day.
  function timeTicks(u, splits, axis, space, incr) {
    var last = "";
    return splits.map(function (s) {
      var d = new Date(s * 1000);
      var day = d.toLocaleDateString("en-GB", { day: "numeric", month: "short" });
      if (incr >= 86400) return day;
      var label = String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
      if (day !== last) label += "\n" + day;
      last = day;
      return label;
    });
  }

  function columnOf(data, key) {
    for (var i = 0; i < data.columns.length; i++) {
      if (data.columns[i].key === key) return data.columns[i];
    }
    return { key: key, label: key, unit: "number" };
  }

  // The names to draw for ``key``: the largest totals (the page holds their rows only).
  function namesFor(data, key) {
    var totals = data.totals.slice().filter(function (t) { return t[key] !== null && t[key] !== undefined; });
    totals.sort(function (a, b) {
      return (b[key] - a[key]) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    });
    var names = totals.slice(0, MOST).map(function (t) { return t.name; });
    return names;
  }

  function yScale(unit) {
    return {
      range: function (u, min, max) {
        if (unit === "percent") return [0, 1];
        var top = max > 0 ? max * 1.15 : 1;
        return [0, unit === "count" ? Math.max(1, Math.ceil(top)) : top];
      }
    };
  }

  function size(el) {
    var width = Math.max(240, Math.floor(el.clientWidth || el.parentNode.clientWidth || 320));
    return { width: width, height: width < 480 ? 200 : 240 };
  }

  function timeChart(el, data, column) {
    var starts = data.buckets.map(function (b) { return b.start; });
    var index = {};
    starts.forEach(function (s, i) { index[data.buckets[i].at] = i; });
    var names = namesFor(data, column.key);
    if (!names.length) return none(el);
    names.sort(function (a, b) { return data.totals.findIndex(function (t) { return t.name === a; }) - data.totals.findIndex(function (t) { return t.name === b; }); });
    var fill = column.unit === "count" || column.unit === "hours" ? 0 : null;
    var series = [{}];
    var values = [starts];
    names.forEach(function (name, n) {
      var ys = starts.map(function () { return fill; });
      data.rows.forEach(function (r) {
        if (r.name === name && index[r.at] !== undefined && r[column.key] !== undefined) ys[index[r.at]] = r[column.key];
      });
      values.push(ys);
      series.push({
        label: name,
        stroke: colourOf(data, name),
        width: 2,
        spanGaps: false,
        points: { show: starts.length <= 48, size: 6 },
        value: function (u, v) { return show(column.unit, v); }
      });
    });
    var against = (data.compare || {})[column.key];
    if (against) {
      // The figure to compare with (the agents staffed against those needed), dashed.
      var label = columnOf(data, against).label;
      data.totals.forEach(function (t) {
        if (t[against] === null || t[against] === undefined) return;
        var ys = starts.map(function () { return null; });
        data.rows.forEach(function (r) {
          if (r.name === t.name && index[r.at] !== undefined && r[against] !== undefined) ys[index[r.at]] = r[against];
        });
        values.push(ys);
        series.push({
          label: label.toLowerCase() + (data.totals.length > 1 ? " " + t.name : ""),
          stroke: "#1c2430",
          dash: [5, 4],
          width: 2,
          points: { show: false },
          value: function (u, v) { return show(column.unit, v); }
        });
      });
    }
    var box = size(el);
    var opts = {
      width: box.width,
      height: box.height,
      scales: { x: { time: true }, y: yScale(column.unit) },
      series: series,
      axes: [{ values: timeTicks }, yAxis(column.unit)],
      legend: { live: false }
    };
    return new window.uPlot(opts, values, el);
  }

  function totalsChart(el, data, column) {
    var names = namesFor(data, column.key);
    if (!names.length) return none(el);
    var byName = {};
    data.totals.forEach(function (t) { byName[t.name] = t; });
    var xs = names.map(function (_, i) { return i; });
    var ys = names.map(function (n) { var v = byName[n] ? byName[n][column.key] : null; return v === undefined ? null : v; });
    var colours = names.map(function (n) { return colourOf(data, n); });
    var box = size(el);
    var opts = {
      width: box.width,
      height: box.height,
      legend: { show: false },
      cursor: { show: false },
      scales: { x: { time: false, range: [-0.5, names.length - 0.5] }, y: yScale(column.unit) },
      series: [{}, {
        label: column.label,
        stroke: PALETTE[0],
        fill: PALETTE[0] + "99",
        width: 1,
        points: { show: false },
        paths: window.uPlot.paths.bars({
          size: [0.6, 80],
          // Each bar in its name's colour, as the lines of the other charts.
          disp: {
            stroke: { unit: 3, values: function () { return colours; } },
            fill: { unit: 3, values: function () { return colours.map(function (c) { return c + "99"; }); } }
          }
        })
      }],
      axes: [
        {
          splits: function () { return xs; },
          values: function (u, splits) { return splits.map(function (i) { return names[i] === undefined ? "" : names[i]; }); },
          rotate: names.length > 4 && box.width < 480 ? -30 : 0,
          size: names.length > 4 && box.width < 480 ? 64 : 40
        },
        yAxis(column.unit)
      ],
      hooks: {
        draw: [function (u) {
          // Each bar's figure above it: a bar chart is read by its numbers too.
          var ctx = u.ctx;
          ctx.save();
          ctx.fillStyle = "#1c2430";
          ctx.font = Math.round(11 * window.devicePixelRatio) + "px system-ui, sans-serif";
          ctx.textAlign = "center";
          ys.forEach(function (v, i) {
            if (v === null) return;
            var x = u.valToPos(i, "x", true);
            var y = u.valToPos(v, "y", true);
            ctx.fillText(show(column.unit, v), x, y - 4 * window.devicePixelRatio);
          });
          ctx.restore();
        }]
      }
    };
    return new window.uPlot(opts, [xs, ys], el);
  }

  function none(el) {
    var p = document.createElement("p");
    p.className = "none";
    p.textContent = "Nothing to draw in this period.";
    el.appendChild(p);
    return null;
  }

  function follow(plot, el) {
    if (!plot || !window.ResizeObserver) return;
    var last = el.clientWidth;
    new window.ResizeObserver(function () {
      if (Math.abs(el.clientWidth - last) < 8) return;
      last = el.clientWidth;
      plot.setSize(size(el));
    }).observe(el);
  }

  function draw() {
    var holder = document.getElementById("report-data");
    if (!holder || !window.uPlot) return;
    var data = JSON.parse(holder.textContent);
    document.querySelectorAll("figure.chart").forEach(function (figure) {
      var el = figure.querySelector(".plot");
      var key = figure.getAttribute("data-chart");
      var plot = key === "totals"
        ? totalsChart(el, data, columnOf(data, figure.getAttribute("data-column")))
        : timeChart(el, data, columnOf(data, key));
      follow(plot, el);
      figure.setAttribute("data-drawn", plot ? "yes" : "empty");
    });
  }

  function autoSubmit() {
    var form = document.querySelector("form.report-filters");
    if (!form) return;
    form.querySelectorAll("select").forEach(function (select) {
      select.addEventListener("change", function () { form.submit(); });
    });
  }

  function start() {
    draw();
    autoSubmit();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
