// Live data for the wallboard (#wallboard) and the calls page (#calls).
//
// One WebSocket to the element's data-ws: a snapshot, then deltas
// (ivr/console/live.py says the protocol). On a drop it reconnects by itself,
// waiting longer each time (0.5 s doubling to 30 s, with jitter), and resumes
// from the last sequence number it got; a closed session (4401) goes to the
// login page. Times shown (in state, waiting, the data's age) use the
// server's clock, sent with every message.
//
// Plain DOM code, not the vendored htmx WebSocket extension: that extension
// swaps server-rendered HTML and reconnects to the same URL, while this
// protocol sends JSON records filtered per user and resumes with ?since=.
"use strict";
(function () {
  const root = document.querySelector("#wallboard[data-ws], #calls[data-ws]");
  if (!root) return;
  const data = { agents: {}, queues: {}, calls: {}, alerts: {} };
  let epoch = "", seq = null, offset = 0, heard = 0, socket = null, delay = 500, drawn = false;
  const status = root.querySelector("[data-age]") || root.appendChild(element("p", "age"));
  status.setAttribute("data-age", "");

  function element(tag, cls) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    return node;
  }

  function esc(value) {
    return String(value == null ? "" : value).replace(/[&<>"']/g, (c) =>
      ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }

  const now = () => Date.now() / 1000 + offset;

  function span(seconds) {
    if (seconds == null || !isFinite(seconds)) return "–";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return s + " s";
    const m = Math.floor(s / 60);
    return m < 60 ? m + ":" + String(s % 60).padStart(2, "0") : Math.floor(m / 60) + " h " + (m % 60) + " min";
  }

  const since = (t) => (t == null ? null : now() - t);
  const pct = (x) => (x == null ? "–" : Math.round(x * 100) + "%");
  const words = (s) => esc(String(s || "").replace(/_/g, " "));

  function connect() {
    const url = new URL(root.dataset.ws, location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    if (seq !== null) url.search = "?epoch=" + encodeURIComponent(epoch) + "&since=" + seq;
    socket = new WebSocket(url);
    socket.onmessage = (event) => receive(JSON.parse(event.data));
    socket.onclose = (event) => {
      socket = null;
      if (event.code === 4401) {
        location.href = "/console/login?next=" + encodeURIComponent(location.pathname);
        return;
      }
      const wait = delay * (0.8 + Math.random() * 0.4);
      delay = Math.min(delay * 2, 30000);
      status.textContent = "Connection lost; trying again in " + span(wait / 1000) + "…";
      status.classList.add("warn");
      setTimeout(connect, wait);
    };
  }

  function receive(message) {
    delay = 500;
    heard = Date.now() / 1000;
    offset = message.now - heard;
    seq = message.seq;
    if (message.type === "snapshot") {
      epoch = message.epoch;
      for (const kind of ["agents", "queues", "calls", "alerts"]) data[kind] = message[kind];
      root.dataset.role = message.user.role;
    } else if (message.type === "delta") {
      for (const [kind, key, record] of message.ops) {
        if (record === null) delete data[kind + "s"][key];
        else data[kind + "s"][key] = record;
      }
      chime(message.ops);
    }
    schedule();
  }

  // Optional sound for new alerts: a short tone, when the user switched it on.
  const sound = element("button", "quiet sound");
  sound.type = "button";
  const label = () => { sound.textContent = "Alert sound: " + (localStorage.getItem("ivr-alert-sound") || "off"); };
  sound.onclick = () => {
    localStorage.setItem("ivr-alert-sound", localStorage.getItem("ivr-alert-sound") === "on" ? "off" : "on");
    label();
  };
  label();
  if (root.id === "wallboard") root.prepend(sound);

  function chime(ops) {
    const fresh = ops.some(([kind, key, record]) => kind === "alert" && record && !(key in shown));
    if (!fresh || localStorage.getItem("ivr-alert-sound") !== "on" || !window.AudioContext) return;
    const audio = new AudioContext(), tone = audio.createOscillator();
    tone.connect(audio.destination);
    tone.start();
    tone.stop(audio.currentTime + 0.2);
  }

  let shown = {};
  function schedule() {
    if (drawn) return;
    drawn = true;
    requestAnimationFrame(() => { drawn = false; draw(); });
  }

  function draw() {
    shown = Object.assign({}, data.alerts);
    if (root.id === "wallboard") drawWallboard();
    else drawCalls();
    const age = heard ? Date.now() / 1000 - heard : null;
    if (socket && socket.readyState === WebSocket.OPEN) {
      status.textContent = "Live · data " + span(age) + " old";
      status.classList.toggle("warn", age > 5);
    }
  }

  function section(id, title, html) {
    let node = root.querySelector("#" + id);
    if (!node) {
      node = element("section");
      node.id = id;
      root.insertBefore(node, status);
    }
    node.innerHTML = "<h2>" + esc(title) + "</h2>" + html;
  }

  function table(head, rows, empty) {
    if (!rows.length) return '<p class="empty">' + esc(empty) + "</p>";
    const th = head.map((h) => "<th>" + esc(h) + "</th>").join("");
    const body = rows.map((r) => "<tr>" + r.map((c, i) =>
      '<td data-label="' + esc(head[i]) + '">' + c + "</td>").join("") + "</tr>").join("");
    return '<div class="table-wrap"><table class="cards"><thead><tr>' + th +
      "</tr></thead><tbody>" + body + "</tbody></table></div>";
  }

  function drawWallboard() {
    for (const old of root.querySelectorAll(":scope > section:not([id^='live-'])")) old.remove();
    const agents = Object.values(data.agents).sort((a, b) => a.id.localeCompare(b.id));
    const count = (...states) => agents.filter((a) => states.includes(a.state)).length;
    const waiting = Object.values(data.queues).reduce((n, q) => n + q.waiting, 0);
    const tile = (cls, n, label) =>
      '<div class="tile ' + cls + '"><span class="figure">' + n + '</span><span class="label">' + label + "</span></div>";
    section("live-floor", "Floor", '<div class="tiles">' + tile(waiting ? "warn" : "", waiting, "calls waiting") +
      tile("ok", count("available"), "available") + tile("busy", count("ringing", "on_call", "on_hold"), "ringing or on a call") +
      tile("wrap", count("wrap_up"), "wrap-up") + tile("paused", count("paused", "missed"), "paused") + "</div>");
    const alerts = Object.values(data.alerts).sort((a, b) => a.since - b.since);
    section("live-alerts", "Alerts", alerts.length ? '<ul class="alerts">' + alerts.map((a) =>
      '<li class="alert ' + esc(a.kind) + '">' + esc(a.queue) + (a.agent ? " · " + esc(a.agent) : "") +
      ": " + esc(a.text) + " (" + span(since(a.since)) + ")</li>").join("") + "</ul>" : '<p class="empty">None.</p>');
    const queues = Object.values(data.queues).sort((a, b) => a.name.localeCompare(b.name));
    section("live-queues", "Queues", table(
      ["Queue", "Waiting", "Longest wait", "Service level", "ASA", "Abandoned", "Handled", "Available", "On a call", "Paused"],
      queues.map((q) => {
        const low = q.service_level != null && q.service_level * 100 < q.target.percent;
        return ["<strong>" + esc(q.name) + "</strong>", q.waiting, span(since(q.oldest_since)),
          '<span class="' + (low ? "warn" : "") + '">' + pct(q.service_level) + "</span> <small>of " +
          esc(q.target.percent) + "% in " + esc(q.target.seconds) + " s</small>",
          span(q.asa), pct(q.abandonment_rate), q.handled, q.agents.available,
          q.agents.on_call + q.agents.ringing, q.agents.paused];
      }), "No queues in your view."));
    const compact = agents.length > 100 ? " compact" : "";
    section("live-agents", "Agents", agents.length ? '<ul class="agent-tiles' + compact + '">' + agents.map((a) =>
      '<li class="agent state-' + esc(a.state) + '" data-agent="' + esc(a.id) + '"><span class="name">' + esc(a.id) +
      '</span><span class="state">' + words(a.state) + (a.reason ? " · " + esc(a.reason) : "") + " · " +
      span(since(a.since)) + "</span>" + (compact ? "" : '<span class="meta">' +
      (a.caller ? esc(a.caller) + " · " + esc(a.queue) + (a.language ? " · " + esc(a.language) : "") +
        (a.flow ? " · " + esc(a.flow) + " " + esc(a.path.join(" › ")) : "") + "<br>" : "") +
      a.handled + " handled · " + a.missed + " missed · AHT " + span(a.aht) + " · paused " +
      span(a.pause_total + (a.state === "paused" ? since(a.since) || 0 : 0)) + "</span>") + "</li>").join("") +
      "</ul>" : '<p class="empty">No agents in your view.</p>');
  }

  function drawCalls() {
    const calls = Object.values(data.calls);
    const stage = (...s) => calls.filter((c) => s.includes(c.stage));
    const path = (c) => esc(c.flow) + " " + esc(c.path.join(" › "));
    const fill = (id, html) => { const node = root.querySelector("#" + id); if (node) node.innerHTML = html; };
    fill("calls-ivr", table(["Caller", "Flow and node", "Language", "In the IVR"],
      stage("ivr").map((c) => [esc(c.caller), path(c), esc(c.language), span(since(c.since))]), "No calls in the IVR."));
    fill("calls-queue", table(["Queue", "Position", "Caller", "Waiting", "Ringing"],
      stage("waiting", "ringing").sort((a, b) => (a.position || 0) - (b.position || 0)).map((c) =>
        [esc(c.queue), c.position || "–", esc(c.caller) + (c.callback ? " <small>callback</small>" : ""),
          span(since(c.queued_at)), c.stage === "ringing" ? esc(c.agent) : ""]), "No calls waiting."));
    fill("calls-connected", table(["Agent", "Caller", "Queue", "Talking", "On hold"],
      stage("connected").map((c) => [esc(c.agent), esc(c.caller), esc(c.queue), span(since(c.answered_at)),
        c.held ? "yes" : ""]), "No calls connected."));
  }

  setInterval(() => { if (heard) draw(); }, 1000);
  connect();
})();
