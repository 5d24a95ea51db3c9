// FiLot reviewer console: the review queue, one case beside its card, claims and decisions.
// Plain ES module, no dependencies, no other host: every request goes to this origin with
// the reviewer's bearer token (kept in sessionStorage, this tab only).

const TOKEN_KEY = "filot.console.token";
const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) node.append(c);
  return node;
};

// What an error code means, for a person.
const SENTENCES = {
  claimed_by_other: "Another reviewer is working on this case. Wait until their claim ends, or ask an admin to release it.",
  not_claimed: "Nobody holds this case, so there is nothing to release.",
  verification_state_conflict: "This case has moved on since you opened it (it is now {state}). Go back to the queue.",
  self_review_forbidden: "You cannot review a case that is your own.",
  four_eyes_required: "The second review must come from a different reviewer.",
  signal_id_reused: "That action was already sent with different details; reload the case.",
  forbidden: "Your token does not allow this. Sign in with a reviewer token.",
  unauthorized: "Your sign-in has expired or the token is not valid. Sign in again.",
  invalid_request: "Something in the form is not valid: {message}",
  verification_busy: "The case is busy on another node. Try again in a moment.",
  verification_unavailable: "The case cannot be processed right now. Try again later.",
  not_found: "This case no longer exists, or you may not see it.",
};

// Issue codes in plain words (anything else is shown as its code).
const ISSUES = {
  nik_gender_mismatch: "The gender printed on the card does not match the NIK.",
  nik_birth_date_mismatch: "The birth date printed on the card does not match the NIK.",
  nik_birth_date_invalid: "The NIK's date digits are not a date.",
  nik_unknown_province: "The NIK starts with a province code that does not exist.",
  nik_region_invalid: "The NIK's region digits are not valid.",
  nik_serial_invalid: "The NIK's serial number is not valid.",
  nik_unreadable: "The NIK could not be read.",
  holder_under_17: "The card holder is younger than 17.",
  npwp_name_mismatch: "The names on the KTP and the NPWP differ.",
  npwp_nik_mismatch: "The NIK on the NPWP differs from the KTP's.",
  npwp_check_digit_invalid: "The NPWP's check digit is wrong.",
  npwp_unreadable: "The NPWP number could not be read.",
  no_card_found: "No card was found in the photo.",
  card_too_small: "The card is small in the photo.",
  too_blurry: "The photo is blurred.",
  too_dark: "The photo is too dark.",
  glare_over_field: "Glare covers a field.",
  nik_used_by_other_account: "Another account used this NIK first.",
  npwp_used_by_other_account: "Another account used this NPWP first.",
};

const FIELDS = ["nik", "name", "birth_place", "birth_date", "gender", "address", "rt_rw",
  "village", "district", "regency", "province", "religion", "marital_status", "occupation",
  "nationality", "valid_until", "blood_type"];
const LOW_CONFIDENCE = 0.9;
const SLA_NEAR_MS = 24 * 3600 * 1000;

let cases = [];
let selected = 0;
let current = null;
let busy = false;

function token() { return sessionStorage.getItem(TOKEN_KEY); }

class ApiFailure extends Error {
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
  sentence() {
    const code = this.body.error || (this.status === 401 ? "unauthorized" : this.status === 403 ? "forbidden" : "");
    const template = SENTENCES[code];
    if (!template) return `Something went wrong (${this.message}).`;
    return template.replace("{state}", (this.body.state || "").replaceAll("_", " ")).replace("{message}", this.body.message || "");
  }
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${token()}`, ...(options.headers || {}) };
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    options = { ...options, body: JSON.stringify(options.json) };
  }
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) {
    signOut("Your sign-in has expired or the token is not valid. Sign in again.");
    throw new ApiFailure(401, { error: "unauthorized" });
  }
  if (!response.ok) {
    let body = null;
    try { body = await response.json(); } catch { /* not JSON */ }
    throw new ApiFailure(response.status, body);
  }
  return response;
}

function subjectOf(jwt) {
  try {
    const payload = JSON.parse(atob(jwt.split(".")[1].replaceAll("-", "+").replaceAll("_", "/")));
    return payload.sub || "";
  } catch { return ""; }
}

function show(panel) {
  for (const id of ["sign-in-panel", "queue-panel", "case-panel"]) $(id).hidden = id !== panel;
  $("sign-out").hidden = panel === "sign-in-panel";
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  $("who").textContent = message || "";
  show("sign-in-panel");
}

function say(text, ok = false) {
  $("message").textContent = text;
  $("message").className = ok ? "ok" : "";
}

// A length of time, as a person reads it.
const span = (ms) => {
  const minutes = Math.max(0, Math.round(ms / 60000));
  return minutes < 60 ? `${minutes} min` : minutes < 2880 ? `${Math.round(minutes / 60)} h` : `${Math.round(minutes / 1440)} d`;
};
const ago = (iso) => span(Date.now() - Date.parse(iso));

// ---- queue ----

async function loadQueue() {
  const states = ["pending_manual_review", "awaiting_second_review"];
  const pages = await Promise.all(states.map((s) => api(`/v1/reviews?state=${s}&limit=100`).then((r) => r.json())));
  cases = pages.flatMap((p) => p.items);
  renderQueue();
}

function renderQueue() {
  const filter = $("filter").value;
  const visible = cases.filter((c) => filter === "all" ? true
    : filter === "claimed" ? !!c.verification.claimed_by : c.verification.state === filter);
  const body = $("queue").tBodies[0];
  body.replaceChildren();
  visible.forEach((c, i) => {
    const v = c.verification;
    const due = v.sla_due_at ? Date.parse(v.sla_due_at) - Date.now() : null;
    const sla = el("td", { class: due !== null && due < SLA_NEAR_MS ? "sla-near" : "" },
      due === null ? "—" : due <= 0 ? "overdue" : span(due));
    const row = el("tr", { "data-testid": "queue-row", "data-id": v.id, class: i === selected ? "selected" : "" },
      el("td", {}, v.id.slice(-8)),
      el("td", {}, v.state.replaceAll("_", " ")),
      el("td", {}, ago(v.created_at)),
      sla,
      el("td", {}, v.score ?? "—"),
      el("td", {}, (v.reasons || []).join(", ")),
      el("td", {}, v.claimed_by || ""));
    row.addEventListener("click", () => openCase(v.id));
    body.append(row);
  });
  $("queue-empty").hidden = visible.length > 0;
  if (selected >= visible.length) selected = Math.max(0, visible.length - 1);
}

document.addEventListener("keydown", (e) => {
  if ($("queue-panel").hidden || e.target.tagName === "TEXTAREA" || e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
  const rows = [...document.querySelectorAll('[data-testid="queue-row"]')];
  if (e.key === "j") selected = Math.min(rows.length - 1, selected + 1);
  else if (e.key === "k") selected = Math.max(0, selected - 1);
  else if (e.key === "Enter" && rows[selected]) return openCase(rows[selected].dataset.id);
  else return;
  rows.forEach((r, i) => r.classList.toggle("selected", i === selected));
});

// ---- one case ----

async function cardImage(documentId, img) {
  const response = await api(`/v1/documents/${documentId}/file?form=page`);
  const blob = await response.blob();
  if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(blob);
  await img.decode().catch(() => {});
}

// The lines OCR read, drawn over the loaded card (quads are in the photo's pixels).
async function drawBoxes(documentId, img) {
  const svg = $("boxes");
  svg.replaceChildren();
  let reading;
  try { reading = await (await api(`/v1/documents/${documentId}/reading`)).json(); } catch { return; }
  svg.setAttribute("viewBox", `0 0 ${img.naturalWidth} ${img.naturalHeight}`);
  svg.setAttribute("preserveAspectRatio", "none");
  for (const line of reading.lines) {
    const poly = document.createElementNS("http://www.w3.org/2000/svg", "polygon");
    poly.setAttribute("points", line.quad.map((p) => p.join(",")).join(" "));
    if (line.confidence < LOW_CONFIDENCE) poly.classList.add("low");
    const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
    title.textContent = `${line.text} (${Math.round(line.confidence * 100)}%)`;
    poly.append(title);
    svg.append(poly);
  }
}

function renderFields(ktp) {
  const form = $("fields");
  form.replaceChildren();
  const fields = ktp?.fields || {};
  const confidence = ktp?.confidence || {};
  const corrected = current.verification.corrected_fields || {};
  const names = [...new Set([...FIELDS.filter((f) => f in fields), ...Object.keys(fields)])];
  for (const name of names) {
    const ocr = String(fields[name] ?? "");
    const input = el("input", { value: corrected[name] ?? ocr, name, "data-testid": `field-${name}` });
    input.dataset.ocr = ocr;
    if ((confidence[name] ?? 1) < LOW_CONFIDENCE) input.classList.add("low");
    const note = el("span", { class: "ocr-value" }, "");
    const mark = () => {
      const edited = input.value !== ocr;
      input.classList.toggle("edited", edited);
      note.textContent = edited ? `read by OCR: ${ocr || "(nothing)"}` : "";
    };
    input.addEventListener("input", mark);
    mark();
    form.append(el("label", {}, name.replaceAll("_", " "), input), note);
  }
}

function renderNik(ktp) {
  const dl = $("nik-encodes");
  dl.replaceChildren();
  const enc = ktp?.nik_encodes;
  if (!enc) { dl.append(el("dd", { class: "none" }, "No NIK read.")); return; }
  const printed = ktp.fields || {};
  const row = (label, encoded, printedValue) => {
    const differs = printedValue !== undefined && encoded && String(printedValue).toUpperCase() !== String(encoded).toUpperCase();
    dl.append(el("dt", {}, label), el("dd", { class: differs ? "mismatch" : "" },
      `${encoded ?? "—"}${differs ? ` (card says ${printedValue})` : ""}`));
  };
  row("Province", enc.province ? `${enc.province} (${enc.province_code})` : enc.province_code);
  row("Regency code", enc.regency_code);
  row("Birth date", enc.birth_date, printed.birth_date);
  row("Gender", enc.gender, printed.gender);
}

function renderNpwp(npwp) {
  const dl = $("npwp-fields");
  dl.replaceChildren();
  $("npwp-figure").hidden = !npwp;
  if (!npwp) { dl.append(el("dd", { class: "none" }, "No NPWP with this case.")); return; }
  for (const [k, v] of Object.entries(npwp.fields || {})) dl.append(el("dt", {}, k.replaceAll("_", " ")), el("dd", {}, String(v)));
}

function renderIssues(c) {
  const ul = $("issues");
  ul.replaceChildren();
  const all = [...new Set([...(c.verification.reasons || []), ...(c.ktp?.issues || []), ...(c.npwp?.issues || [])])];
  for (const code of all) ul.append(el("li", {}, ISSUES[code] || code.replaceAll("_", " ")));
  // Other accounts' cases with the same number, earlier or later: one click away when
  // that case is in the queue too.
  for (const other of c.verification.identity_collisions || []) {
    const id = other.verification_id;
    const queued = cases.some((q) => q.verification.id === id);
    const ref = el(queued ? "a" : "code", { "data-testid": "collision", "data-id": id, title: id },
      `case ${id.slice(-8)}`);
    if (queued) {
      ref.href = "#";
      ref.addEventListener("click", (e) => { e.preventDefault(); openCase(id); });
    }
    ul.append(el("li", {}, `The ${other.kind.toUpperCase()} is also on another account's `, ref, "."));
  }
  if (!ul.children.length) ul.append(el("li", {}, "None."));
}

async function renderTimeline(id) {
  const events = await (await api(`/v1/verifications/${id}/events`)).json();
  $("timeline").replaceChildren(...events.map((e) =>
    el("li", {}, `${new Date(e.created_at).toLocaleString()} — ${e.kind.replaceAll("_", " ")} by ${e.actor}`)));
}

function renderActions() {
  const v = current.verification;
  const me = subjectOf(token());
  const second = v.state === "awaiting_second_review";
  const claimedByOther = v.claimed_by && v.claimed_by !== me;
  // The proposer of a decision does not take its second review.
  const proposer = second && v.proposal?.reviewer === me;
  document.querySelector(".first-review").hidden = second;
  document.querySelector(".second-review").hidden = !second;
  $("proposal").textContent = second && v.proposal
    ? `${proposer ? "You propose" : `${v.proposal.reviewer} proposes`} to ${v.proposal.decision}: “${v.proposal.reason}”${proposer ? " — another reviewer confirms it." : ""}` : "";
  $("case-claim").textContent = v.claimed_by
    ? `Claimed by ${v.claimed_by === me ? "you" : v.claimed_by} until ${new Date(v.claim_expires_at).toLocaleTimeString()}`
    : "Nobody has claimed this case.";
  for (const id of ["approve", "reject", "cancel"]) $(id).disabled = busy || !!claimedByOther;
  for (const id of ["confirm-second-review", "reject-second-review"]) $(id).disabled = busy || !!claimedByOther || proposer;
  $("claim").disabled = busy || !!claimedByOther || proposer;
  $("release").disabled = busy || !v.claimed_by;
}

async function openCase(id) {
  say("");
  current = cases.find((c) => c.verification.id === id);
  if (!current) return;
  show("case-panel");
  $("case-title").textContent = `Case ${id}`;
  renderFields(current.ktp);
  renderNik(current.ktp);
  renderNpwp(current.npwp);
  renderIssues(current);
  renderActions();
  try {
    await Promise.all([
      // The queue's copy lacks what only the case itself says (other accounts' cases).
      api(`/v1/verifications/${id}`).then((r) => r.json()).then((v) => {
        if (current?.verification.id !== id) return;
        current = { ...current, verification: { ...current.verification, ...v } };
        renderIssues(current);
      }),
      current.ktp ? cardImage(current.ktp.id, $("card-image")).then(() => drawBoxes(current.ktp.id, $("card-image"))) : null,
      current.npwp ? cardImage(current.npwp.id, $("npwp-image")) : null,
      renderTimeline(id),
    ]);
  } catch (e) { say(e instanceof ApiFailure ? e.sentence() : String(e)); }
}

async function refreshCase() {
  const id = current.verification.id;
  const v = await (await api(`/v1/verifications/${id}`)).json();
  current = { ...current, verification: v };
  renderActions();
  await renderTimeline(id);
}

// Every signal carries a fresh id; while one is in flight no other is sent (a double click
// never decides twice).
async function signal(name, body, done) {
  if (busy) return;
  busy = true;
  renderActions();
  try {
    const id = current.verification.id;
    await api(`/v1/verifications/${id}/signals/${name}`, {
      method: "POST", json: { signal_id: crypto.randomUUID(), ...body },
    });
    say(done, true);
  } catch (e) {
    say(e instanceof ApiFailure ? e.sentence() : String(e));
  } finally {
    busy = false;
    await refreshCase().catch(() => {});
  }
}

function corrections() {
  const out = {};
  for (const input of $("fields").querySelectorAll("input")) {
    if (input.value !== input.dataset.ocr) out[input.name] = input.value;
  }
  return out;
}

function reason() {
  const text = $("reason").value.trim();
  if (!text) { say("Write a reason first: it goes into the audit trail."); return null; }
  return text;
}

$("claim").addEventListener("click", () => signal("claim", {}, "You hold this case now."));
$("release").addEventListener("click", () => signal("release", {}, "The case is released."));
for (const [button, decision] of [["approve", "approve"], ["reject", "reject"]]) {
  $(button).addEventListener("click", () => {
    const why = reason();
    if (!why) return;
    const fields = corrections();
    const body = { decision, reason: why };
    if (Object.keys(fields).length) body.corrected_fields = fields;
    signal("review-decision", body, `Sent: ${decision}.`);
  });
}
for (const [button, decision] of [["confirm-second-review", "confirm"], ["reject-second-review", "reject"]]) {
  $(button).addEventListener("click", () => {
    const why = reason();
    if (why) signal("second-review", { decision, reason: why }, `Second review sent: ${decision}.`);
  });
}
$("cancel").addEventListener("click", () => {
  const why = reason();
  if (why) signal("cancel-review", { reason: why }, "The case is cancelled.");
});
$("back").addEventListener("click", () => { show("queue-panel"); loadQueue().catch(showError); });
$("refresh").addEventListener("click", () => loadQueue().catch(showError));
$("filter").addEventListener("change", renderQueue);
$("sign-out").addEventListener("click", () => signOut(""));
$("sign-in").addEventListener("click", async () => {
  const value = $("token").value.trim();
  if (!value) return;
  sessionStorage.setItem(TOKEN_KEY, value);
  await start();
});

function showError(e) {
  $("who").textContent = e instanceof ApiFailure ? e.sentence() : String(e);
}

async function start() {
  if (!token()) return show("sign-in-panel");
  $("who").textContent = subjectOf(token());
  show("queue-panel");
  await loadQueue().catch(showError);
}

start();
