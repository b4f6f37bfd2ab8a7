// assess web: autosave (server + localStorage) and running scores from the server. No scoring here.
(function () {
  "use strict";
  var KEY = "assess-draft-";

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }

  var printBtn = $("#print-btn");
  if (printBtn) printBtn.addEventListener("click", function () { window.print(); });
  var done = $("[data-clear-draft]");
  if (done) { try { localStorage.removeItem(KEY + done.getAttribute("data-clear-draft")); } catch (e) {} }

  var form = $("#assessment");
  if (!form) return;
  var key = KEY + form.dataset.draft;
  var state = $("#sync-state");
  var timer = null, inflight = false, again = false;

  function load() { try { return JSON.parse(localStorage.getItem(key)) || null; } catch (e) { return null; } }
  function keep(local) { try { localStorage.setItem(key, JSON.stringify(local)); } catch (e) {} }

  function collect() {
    var out = {};
    $all("fieldset[data-qid]", form).forEach(function (fs) {
      var qid = fs.dataset.qid;
      if (fs.dataset.kind !== "choice") { out[qid] = $("input", fs).value; return; }   // one input
      var checked = $("input[type=radio]:checked", fs);
      out[qid] = checked ? checked.value : null;
    });
    return out;
  }

  function apply(answers) {   // restore unsynced answers from this device into the page
    $all("fieldset[data-qid]", form).forEach(function (fs) {
      var qid = fs.dataset.qid;
      if (!(qid in answers)) return;
      var v = answers[qid];
      if (fs.dataset.kind !== "choice") { $("input", fs).value = (v === null || v === undefined) ? "" : v; return; }
      $all("input[type=radio]", fs).forEach(function (r) { r.checked = (v !== null && r.value === String(v)); });
    });
  }

  function show(run) {
    $all(".chip[data-domain]").forEach(function (chip) {
      var v = run.domains[chip.dataset.domain];
      $("[data-score]", chip).textContent = (v === null || v === undefined) ? "—" : v;
    });
    $("#run-total").textContent = run.total === null ? "—" : run.total;
    $("#run-level").textContent = run.level === null ? "未完成" : run.level_label;
    var list = $("#run-problems");
    list.textContent = "";
    (run.problems || []).forEach(function (p) {
      var li = document.createElement("li");
      li.textContent = p.code + "：" + p.message;
      list.appendChild(li);
    });
    return run;
  }

  function status(text, offline) {
    if (!state) return;
    state.textContent = text;
    state.classList.toggle("offline", !!offline);
  }

  function sync() {
    var local = load();
    if (!local || !local.pending) return;
    if (inflight) { again = true; return; }
    inflight = true;
    fetch(form.dataset.autosave, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": form.dataset.csrf },
      body: JSON.stringify({ answers: local.answers })
    }).then(function (resp) {
      if (resp.status === 409) { local.pending = false; keep(local); return null; }
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      return resp.json();
    }).then(function (data) {
      if (!data) return;
      var now = load();
      if (now && now.seq === local.seq) { now.pending = false; keep(now); }
      show(data.running);
      var missing = data.running.missing ? "尚有 " + data.running.missing + " 项未答 · " : "";
      status(missing + "已保存 " + new Date().toLocaleTimeString("zh-CN", { hour12: false }));
    }).catch(function () {
      status("网络中断：答案已保存在本机，恢复网络后自动同步", true);
    }).then(function () {
      inflight = false;
      if (again) { again = false; sync(); }
    });
  }

  function changed(fs) {
    if (fs) fs.classList.remove("highlight");
    var local = load() || { answers: {}, seq: 0 };
    var now = collect();
    Object.keys(now).forEach(function (k) { local.answers[k] = now[k]; });
    local.pending = true;
    local.seq = (local.seq || 0) + 1;
    keep(local);
    status("保存中…");
    clearTimeout(timer);
    timer = setTimeout(sync, 250);
  }

  form.addEventListener("change", function (ev) { changed(ev.target.closest("fieldset")); });
  form.addEventListener("input", function (ev) {
    if (ev.target.type === "text" || ev.target.tagName === "INPUT" && ev.target.type !== "radio") {
      clearTimeout(timer);
      timer = setTimeout(function () { changed(ev.target.closest("fieldset")); }, 600);
    }
  });
  window.addEventListener("online", sync);
  document.addEventListener("visibilitychange", function () { if (!document.hidden) sync(); });

  var local = load();
  if (local && local.pending) { apply(local.answers); sync(); }
})();
