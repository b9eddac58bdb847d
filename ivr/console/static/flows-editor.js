// The flows editor: a textarea with line numbers, and the validator's problems marked
// at their lines as the admin types. The text goes to POST /console/flows/validate
// (the checks of `ivr validate` and of the engine's reload), at most one request in
// flight, a moment after the last key; the server checks again when it saves.
(() => {
  "use strict";
  const editor = document.getElementById("editor");
  if (!editor) return;
  const text = editor.querySelector("textarea");
  const gutter = editor.querySelector(".gutter");
  const marks = editor.querySelector(".marks");
  const list = document.getElementById("problems");
  const status = document.getElementById("check");
  const name = document.getElementById("flow-name");
  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrf = meta ? meta.content : "";
  const form = text.form;
  const original = text.value;
  let problems = [...list.querySelectorAll("li[data-line]")].map((li) => ({
    line: Number(li.dataset.line), column: Number(li.dataset.column), message: li.dataset.message || "",
  }));
  let shownLines = -1;
  let timer = 0;
  let asked = 0;
  let escaped = false;
  let leaving = false;

  const lineHeight = () => parseFloat(getComputedStyle(text).lineHeight) || 20;

  function draw() {
    const count = text.value.split("\n").length;
    const bad = new Map();
    for (const p of problems) bad.set(p.line, (bad.has(p.line) ? bad.get(p.line) + "\n" : "") + p.message);
    const numbers = document.createDocumentFragment();
    const rows = document.createDocumentFragment();
    for (let i = 1; i <= count; i += 1) {
      const number = document.createElement("div");
      const row = document.createElement("div");
      number.textContent = String(i);
      if (bad.has(i)) {
        number.className = "bad";
        number.title = bad.get(i);
        row.className = "bad";
      }
      numbers.appendChild(number);
      rows.appendChild(row);
    }
    gutter.replaceChildren(numbers);
    marks.replaceChildren(rows);
    shownLines = count;
    follow();
  }

  function follow() {
    gutter.style.transform = `translateY(${-text.scrollTop}px)`;
    marks.style.transform = `translateY(${-text.scrollTop}px)`;
  }

  function go(line, column) {
    const rows = text.value.split("\n");
    let at = 0;
    for (let i = 0; i < line - 1 && i < rows.length; i += 1) at += rows[i].length + 1;
    at += Math.max(0, Math.min(column - 1, (rows[line - 1] || "").length));
    text.focus();
    text.setSelectionRange(at, at);
    text.scrollTop = Math.max(0, (line - 4) * lineHeight());
    follow();
  }

  function item(p) {
    const li = document.createElement("li");
    li.dataset.line = String(p.line);
    li.dataset.column = String(p.column);
    li.dataset.message = p.message;
    const link = document.createElement("a");
    link.href = "#flow-text";
    link.textContent = `line ${p.line}, col ${p.column}`;
    li.append(link, `: ${p.message}`);
    return li;
  }

  function say(message, kind) {
    status.textContent = message;
    status.className = `check ${kind}`;
  }

  function show(data) {
    problems = data.problems || [];
    list.replaceChildren(...problems.map(item));
    draw();
    if (data.error) say(data.error, "bad");
    else if (problems.length) say(`${problems.length} problem(s): the engine would refuse this text.`, "bad");
    else if (data.flow) say(`No problems: flow ${data.flow.id}, version ${data.flow.version}.`, "ok");
  }

  async function check() {
    const key = name ? name.value.trim() : editor.dataset.key;
    if (!key) {
      say("Give the file a name to check it.", "");
      return;
    }
    const mine = (asked += 1);
    say("Checking…", "busy");
    let reply;
    try {
      reply = await fetch(editor.dataset.validate, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ key, text: text.value, new: Boolean(editor.dataset.new) }),
      });
    } catch (error) {
      if (mine === asked) say("Not checked: the console does not answer.", "bad");
      return;
    }
    if (mine !== asked) return; // a newer text is being checked
    if (reply.status === 401) {
      window.location.href = "/console/login";
      return;
    }
    let data = {};
    try {
      data = await reply.json();
    } catch (error) {
      data = {};
    }
    if (!reply.ok) say(data.error || `Not checked (${reply.status}).`, "bad");
    else show(data);
  }

  function later() {
    window.clearTimeout(timer);
    timer = window.setTimeout(check, 350);
  }

  list.addEventListener("click", (event) => {
    const li = event.target.closest("li[data-line]");
    if (!li) return;
    event.preventDefault();
    go(Number(li.dataset.line), Number(li.dataset.column));
  });
  text.addEventListener("input", () => {
    if (text.value.split("\n").length !== shownLines) draw();
    later();
  });
  text.addEventListener("scroll", follow);
  text.addEventListener("keydown", (event) => {
    // YAML indents with spaces: Tab types two of them (Esc first lets Tab leave).
    if (event.key === "Escape") {
      escaped = true;
      return;
    }
    if (event.key === "Tab" && !event.shiftKey && !escaped && !event.ctrlKey && !event.altKey) {
      event.preventDefault();
      text.setRangeText("  ", text.selectionStart, text.selectionEnd, "end");
      text.dispatchEvent(new Event("input"));
    }
    escaped = false;
  });
  if (name) name.addEventListener("input", later);
  form.addEventListener("submit", () => {
    leaving = true;
  });
  window.addEventListener("beforeunload", (event) => {
    if (!leaving && text.value !== original) event.preventDefault();
  });
  draw();
  editor.classList.add("ready");
  if (!problems.length && !editor.dataset.new) check();
})();
