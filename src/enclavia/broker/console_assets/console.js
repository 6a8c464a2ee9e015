"use strict";
(function () {
  const base = location.pathname.replace(/\/console\/?$/, "");
  function token() {
    const m = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
    if (m) {
      sessionStorage.setItem("enclavia-admin-token", decodeURIComponent(m[1]));
      history.replaceState(null, "", location.pathname + location.search);
    }
    return sessionStorage.getItem("enclavia-admin-token");
  }
  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function short(v, n) { v = v || ""; return v.length > n ? v.slice(0, n) + "\u2026" : v; }
  function code(v, n) { const c = el("code", short(v, n || 20)); c.title = v || ""; return c; }
  function fill(id, rows) {
    const body = document.querySelector("#" + id + " tbody");
    body.replaceChildren();
    if (!rows.length) {
      const tr = el("tr"); const td = el("td", "none", "muted");
      td.colSpan = document.querySelectorAll("#" + id + " th").length; tr.append(td); body.append(tr); return;
    }
    for (const cells of rows) {
      const tr = el("tr");
      for (const c of cells) { const td = el("td"); td.append(c instanceof Node ? c : el("span", c)); tr.append(td); }
      body.append(tr);
    }
  }
  async function get(path, tok) {
    const r = await fetch(base + path, { headers: { authorization: "Bearer " + tok }, cache: "no-store" });
    if (!r.ok) throw new Error(r.status === 401 ? "admin token refused" : "broker answered " + r.status);
    return r;
  }
  function render(s) {
    document.getElementById("generated").textContent = "as of " + s.generated_at;
    document.getElementById("policy-revision").textContent = s.broker.policy_revision;
    document.getElementById("policy-id").textContent = s.broker.policy_id || "no policy";
    document.getElementById("ledger-height").textContent = s.ledger.height + " records";
    const v = s.ledger.verification;
    const ls = document.getElementById("ledger-status");
    ls.replaceChildren(el("span", v.ok ? "verified" : "VERIFICATION FAILED: " + v.error_code, v.ok ? "ok" : "bad"));
    document.getElementById("enclave-count").textContent = s.enclaves.filter(e => e.attested_ok > 0).length;
    document.getElementById("tokens").textContent =
      s.live_tokens.reduce((a, t) => a + t.tokens, 0) + " live token(s)";
    const denied = s.decisions.window.filter(r => r.outcome === "denied" &&
      (r.action === "attest" || r.action === "release")).reduce((a, r) => a + r.count, 0);
    document.getElementById("denial-count").textContent = denied;
    fill("alerts", s.alerts.map(a => [a.alert, el("span", a.severity, a.severity), a.summary,
      code("docs/runbooks/" + a.runbook, 80)]));
    fill("enclaves", s.enclaves.map(e => [e.tee || "?", e.reference || "not in any policy",
      code(e.measurement || e.measurement_ref, 24), el("span", e.allowed_now ? "yes" : "NO", e.allowed_now ? "ok" : "bad"),
      e.attested_ok, e.denied, e.last_attested || "-"]));
    const current = s.policy_history.length ? s.policy_history[s.policy_history.length - 1] : null;
    fill("measurements", current ? current.references.map(r => [r.tee, r.name,
      code(Object.entries(r.values).map(([k, x]) => k + "=" + x).join(" "), 40), r.not_after || "-"]) : []);
    fill("policies", s.policy_history.slice().reverse().map(p => [p.revision, p.policy_id, p.applied_at,
      p.profile, p.references.map(r => r.tee + ":" + r.name).join(", "), code(p.sha256, 12)]));
    fill("denials", s.recent_denials.slice(0, 20).map(d => [d.seq, d.time, d.action, code(d.code, 40),
      d.policy_revision]));
  }
  async function refresh() {
    const tok = token();
    const form = document.getElementById("login");
    if (!tok) { form.hidden = false; document.body.dataset.state = "login"; return; }
    const err = document.getElementById("error");
    try {
      const s = await (await get("/ops/summary", tok)).json();
      render(s);
      try {
        const svg = await (await get("/console/dataflow.svg", tok)).text();
        const img = el("img"); img.alt = "data-flow diagram";
        img.src = "data:image/svg+xml;base64," + btoa(unescape(encodeURIComponent(svg)));
        document.getElementById("dataflow").replaceChildren(img);
      } catch (e) { /* no deployment config: keep the note */ }
      err.hidden = true;
      document.body.dataset.state = "ready";
    } catch (e) {
      err.textContent = e.message; err.hidden = false; document.body.dataset.state = "error";
      if (e.message === "admin token refused") { sessionStorage.removeItem("enclavia-admin-token"); form.hidden = false; }
    }
  }
  document.getElementById("login").addEventListener("submit", ev => {
    ev.preventDefault();
    sessionStorage.setItem("enclavia-admin-token", document.getElementById("token").value);
    document.getElementById("login").hidden = true;
    refresh();
  });
  refresh();
  setInterval(refresh, 15000);
})();
