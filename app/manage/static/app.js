// Manage Seats: the plan, the seat slider with its quote, the confirmation dialog, the agents.
// Every number shown comes from the service's public API; the page computes no price itself.

import {
  Api,
  NetworkError,
  Problem,
  claimsOf,
  forgetToken,
  isRetryable,
  newKey,
  sentenceFor,
  takeToken,
} from "./api.js";
import { day, money, plural } from "./format.js";

const $ = (id) => document.getElementById(id);
const PREVIEW_DELAY_MS = 250; // the slider asks for a price once it rests this long
const PENDING_KEY = "seats.pending"; // a change awaiting its answer, kept for a retry

const STATUS_LABELS = {
  none: "No plan",
  trialing: "Free trial",
  trial_expired: "Trial ended",
  active: "Active",
  past_due: "Past due",
  canceled: "Canceled",
};
const PAID = new Set(["active", "past_due"]);
const ROLE_LABELS = { primary_admin: "Primary admin", admin: "Admin", user: "User" };

const state = {
  api: null,
  me: null, // the token's user id
  role: null, // the caller's role from the directory, once known
  plan: null, // the summary
  users: [],
  usersCursor: null,
  invoices: [],
  purchaseOpen: false, // "Purchase" / "Buy now" pressed on a plan without paid seats
  preview: null, // the last quote preview, for the slider's value
  previewFor: null,
  previewTimer: null,
  previewAbort: 0,
  change: null, // the change the dialog shows: {seats, kind, preview}
};

// ---------------------------------------------------------------------------------------
// Messages

function say(text) {
  $("notice").textContent = text;
}

function showProblem(target, error, context) {
  const { text, link } = sentenceFor(error, context);
  const box = $(target);
  box.replaceChildren();
  const p = document.createElement("p");
  p.textContent = text;
  if (link) {
    const a = document.createElement("a");
    a.href = link.href;
    a.textContent = link.label;
    a.addEventListener("click", (event) => {
      event.preventDefault();
      $("confirm").close();
      const section = $(link.href.slice(1));
      section.scrollIntoView();
      section.focus();
    });
    p.append(" ", a);
  }
  box.append(p);
}

function clearMessages() {
  $("notice").textContent = "";
  $("problem").replaceChildren();
}

// ---------------------------------------------------------------------------------------
// Loading

async function loadPlan() {
  state.plan = await state.api.get("");
}

async function loadUsers({ more = false } = {}) {
  const cursor = more && state.usersCursor ? `&cursor=${encodeURIComponent(state.usersCursor)}` : "";
  try {
    const page = await state.api.get(`/users?limit=100${cursor}`);
    state.users = more ? [...state.users, ...page.data] : page.data;
    state.usersCursor = page.next_cursor;
  } catch (error) {
    if (error instanceof Problem && error.code === "not_admin") {
      state.role = "user"; // only admins see the directory: plain users get the plan only
      state.users = [];
      state.usersCursor = null;
      return;
    }
    throw error;
  }
  const mine = state.users.find((u) => u.user_id === state.me);
  if (mine) state.role = mine.role;
  else if (state.role === null) state.role = state.usersCursor ? null : "admin";
}

async function loadInvoices() {
  if (state.role === "user") return;
  const page = await state.api.get("/invoices?limit=10");
  state.invoices = page.data;
}

async function refresh() {
  state.preview = null; // priced against the plan as it was: ask again for the slider's value
  await loadPlan();
  await loadUsers();
  // Find the caller's own role when the first page of users did not hold it.
  while (state.role === null && state.usersCursor) await loadUsers({ more: true });
  if (state.role === null) state.role = "admin";
  await loadInvoices();
  render();
}

// ---------------------------------------------------------------------------------------
// Rendering

function setText(id, text) {
  $(id).textContent = text;
}

function isPrimary() {
  return state.role === "primary_admin";
}

function isAdmin() {
  return state.role === "primary_admin" || state.role === "admin";
}

function render() {
  const plan = state.plan;
  $("loading").hidden = true;
  $("plan").hidden = false;
  const paid = PAID.has(plan.status);
  const cur = plan.currency;

  setText("fact-status", STATUS_LABELS[plan.status] || plan.status);
  setText("fact-seats", plan.seats.toLocaleString());
  setText("fact-assigned", plan.assigned.toLocaleString());
  setText("fact-available", plan.available.toLocaleString());
  setText("fact-monthly", money(plan.monthly_total, cur));
  const dateRow = $("fact-date-row");
  dateRow.hidden = false;
  if (plan.status === "trialing" && plan.trial) {
    setText("fact-date-label", "Trial ends");
    setText("fact-date", day(plan.trial.ends_at));
  } else if (paid && plan.next_renewal_at) {
    setText("fact-date-label", "Next renewal");
    setText("fact-date", day(plan.next_renewal_at));
  } else {
    dateRow.hidden = true;
  }

  const kept = `Your agents (${plan.assigned.toLocaleString()}) are kept but inactive until you ` +
    "purchase seats.";
  const texts = {
    none: "You have no Conversations seats yet. Start a free trial of " +
      "20 seats, or buy the seats you need now.",
    trialing: plan.trial
      ? `Your free trial of ${plan.trial.seats} seats ends on ${day(plan.trial.ends_at)}. ` +
        "Purchase seats to keep your agents working after that."
      : "You are on a free trial.",
    trial_expired:
      `Your free trial ended${plan.trial ? ` on ${day(plan.trial.ends_at)}` : ""}. ${kept}`,
    canceled: `Your plan was canceled. ${kept}`,
    active: `${plural(plan.seats, "seat", "seats")}, ${money(plan.monthly_total, cur)} per month` +
      (plan.next_renewal_at ? `, renewing on ${day(plan.next_renewal_at)}.` : "."),
    past_due: "Your last renewal payment failed. Your agents keep working while you pay it.",
  };
  setText("plan-text", texts[plan.status] || "");

  const primary = isPrimary();
  $("start-trial").hidden = !(primary && plan.status === "none" && !plan.trial);
  $("buy-now").hidden = !(primary && plan.status === "none");
  $("purchase").hidden = !(primary && !paid && plan.status !== "none");
  const roleNote = $("role-note");
  roleNote.hidden = primary;
  roleNote.textContent = primary
    ? ""
    : "Only the primary account admin can start a trial, buy or remove seats.";

  renderPastDue();
  renderSeats();
  renderAgents();
  renderInvoices();
}

function renderPastDue() {
  const plan = state.plan;
  const outstanding = plan.outstanding_invoice;
  const banner = $("past-due");
  banner.hidden = !(plan.status === "past_due" && outstanding);
  if (banner.hidden) return;
  const reason = outstanding.failure_reason ? ` (${outstanding.failure_reason})` : "";
  setText(
    "past-due-text",
    `The renewal of ${money(outstanding.total, plan.currency)} due since ` +
      `${day(outstanding.due_since)} was declined${reason}. Buying seats is paused until it ` +
      "is paid. Update the payment method if needed, then pay now.",
  );
  $("pay-now").hidden = !isPrimary();
}

/** The slider's starting total: the seats owned, or what a first purchase would cover. */
function startingSeats(plan) {
  if (PAID.has(plan.status) || plan.status === "trialing") return plan.seats;
  return Math.max(plan.assigned, 1);
}

function renderSeats() {
  const plan = state.plan;
  const show = isPrimary() && (PAID.has(plan.status) || state.purchaseOpen);
  const section = $("seats");
  const wasHidden = section.hidden;
  section.hidden = !show;
  if (!show) return;
  if (wasHidden || state.previewFor === null) setSeats(startingSeats(plan));
  else setSeats(Number($("seats-slider").value));
}

function renderAgents() {
  const plan = state.plan;
  const section = $("agents");
  section.hidden = !isAdmin();
  if (section.hidden) return;
  setText(
    "agents-text",
    `${plural(plan.assigned, "agent", "agents")} of ${plural(plan.seats, "seat", "seats")}.` +
      (plan.available ? ` ${plural(plan.available, "seat is", "seats are")} empty.` : ""),
  );
  const note = $("agents-note");
  const inactive = ["none", "trial_expired", "canceled"].includes(plan.status);
  note.hidden = !inactive;
  note.textContent = inactive
    ? "Agents are kept but can't use the inbox until the account has seats."
    : "";
  const list = $("users");
  list.replaceChildren(...state.users.map(userRow));
  $("more-users").hidden = !state.usersCursor;
}

function userRow(user) {
  const li = document.createElement("li");
  const who = document.createElement("div");
  who.className = "who";
  const name = document.createElement("div");
  name.className = "name";
  name.id = `user-${user.user_id}`;
  name.textContent = user.name || user.user_id;
  const email = document.createElement("div");
  email.className = "email";
  email.textContent = user.email;
  const role = document.createElement("div");
  role.className = "role";
  role.textContent = ROLE_LABELS[user.role] || user.role;
  who.append(name, email, role);

  const sw = document.createElement("button");
  sw.type = "button";
  sw.className = "switch";
  sw.setAttribute("role", "switch");
  sw.setAttribute("aria-checked", String(user.agent));
  sw.setAttribute("aria-labelledby", name.id);
  sw.title = user.agent ? "Agent: press to unassign the seat" : "Press to assign a seat";
  const track = document.createElement("span");
  track.className = "track";
  track.setAttribute("aria-hidden", "true");
  const label = document.createElement("span");
  label.setAttribute("aria-hidden", "true");
  label.textContent = user.agent ? "Agent" : "Not an agent";
  sw.append(track, label);
  sw.addEventListener("click", () => toggleAgent(user, sw));
  li.append(who, sw);
  return li;
}

function renderInvoices() {
  const section = $("invoices");
  section.hidden = !isAdmin();
  if (section.hidden) return;
  $("invoices-empty").hidden = state.invoices.length > 0;
  const statusWords = {
    pending: "Unpaid",
    paid: "Paid",
    failed: "Declined",
    void: "Void",
    uncollectible: "Uncollectible",
  };
  $("invoice-list").replaceChildren(
    ...state.invoices.map((inv) => {
      const li = document.createElement("li");
      const left = document.createElement("div");
      left.className = "who";
      const title = document.createElement("div");
      title.className = "name";
      title.textContent = `${inv.kind === "renewal" ? "Renewal" : "Purchase"}, ${day(inv.created_at)}`;
      const detail = document.createElement("div");
      detail.className = "detail";
      detail.textContent = inv.lines.map((l) => l.description).join("; ");
      left.append(title, detail);
      const right = document.createElement("div");
      const amount = document.createElement("span");
      amount.className = "amount";
      amount.textContent = money(inv.total, inv.currency);
      const status = document.createElement("span");
      status.className = `status-${inv.status}`;
      status.textContent = ` ${statusWords[inv.status] || inv.status}`;
      right.append(amount, status);
      li.append(left, right);
      return li;
    }),
  );
}

// ---------------------------------------------------------------------------------------
// The slider and its price

/** Whether moving to ``seats`` is a change the service would accept as one. */
function changeKind(seats) {
  const plan = state.plan;
  if (PAID.has(plan.status)) {
    if (seats > plan.seats) return "purchase";
    if (seats < plan.seats) return "removal";
    return null;
  }
  return seats > 0 ? "purchase" : null;
}

function setSeats(seats) {
  const slider = $("seats-slider");
  const number = $("seats-number");
  // No cap on seats (R2): the slider's range grows with the total, the number field goes on.
  const top = Math.max(100, state.plan.seats * 2, state.plan.assigned * 2, seats);
  slider.max = String(top);
  slider.value = String(seats);
  slider.setAttribute("aria-valuetext", plural(seats, "seat", "seats"));
  if (Number(number.value) !== seats) number.value = String(seats);
  $("update").disabled = changeKind(seats) === null;
  schedulePreview(seats);
}

function schedulePreview(seats) {
  if (state.previewFor === seats && state.preview) return showPreview();
  state.previewFor = seats;
  state.preview = null;
  setText("price-monthly", "…");
  setText("price-due", "…");
  clearTimeout(state.previewTimer);
  state.previewTimer = setTimeout(() => fetchPreview(seats), PREVIEW_DELAY_MS);
}

async function fetchPreview(seats) {
  const ticket = ++state.previewAbort; // answers to older moves are dropped
  try {
    const preview = await state.api.get(`/quote-preview?seats=${seats}`);
    if (ticket !== state.previewAbort) return;
    state.preview = preview;
    showPreview();
  } catch (error) {
    if (ticket !== state.previewAbort) return;
    setText("price-monthly", "–");
    setText("price-due", "–");
    setText("price-note", sentenceFor(error, { seats }).text);
  }
}

function showPreview() {
  const q = state.preview;
  const cur = q.currency;
  setText("price-monthly", money(q.monthly_total, cur));
  setText("price-due", money(q.due_now, cur));
  const kind = changeKind(q.seats);
  let note = "";
  if (!q.allowed) {
    note =
      `${plural(q.assigned, "agent is", "agents are")} assigned: unassign ` +
      `${plural(q.assigned - q.seats, "agent", "agents")} before going down to ` +
      `${plural(q.seats, "seat", "seats")}.`;
  } else if (kind === "purchase") {
    note =
      `Charged now for ${plural(q.proration.days_remaining, "day", "days")} of ` +
      `${q.proration.days_in_period}, until ${day(q.proration.period_end)}; then ` +
      `${money(q.cycle_total, cur)} per ${q.billing_cycle === "yearly" ? "year" : "month"}.`;
  } else if (kind === "removal") {
    note = "Removing seats takes effect at once. There is no refund for the current period.";
  }
  setText("price-note", note);
}

async function currentPreview(seats) {
  if (state.preview && state.preview.seats === seats) return state.preview;
  clearTimeout(state.previewTimer);
  state.previewFor = seats;
  state.preview = await state.api.get(`/quote-preview?seats=${seats}`);
  showPreview();
  return state.preview;
}

// ---------------------------------------------------------------------------------------
// The dialog: review, then "Confirm seat purchase"

/** The change kept for a retry: same total, same quote, same Idempotency-Key. */
function pendingChange() {
  try {
    return JSON.parse(sessionStorage.getItem(PENDING_KEY) || "null");
  } catch {
    return null;
  }
}

function keepPending(change) {
  if (change) sessionStorage.setItem(PENDING_KEY, JSON.stringify(change));
  else sessionStorage.removeItem(PENDING_KEY);
}

async function openDialog() {
  clearMessages();
  const seats = Number($("seats-slider").value);
  const kind = changeKind(seats);
  if (!kind) return;
  let preview;
  try {
    preview = await currentPreview(seats);
  } catch (error) {
    showProblem("problem", error, { seats, action: kind });
    return;
  }
  state.change = { seats, kind, preview };
  fillDialog();
  $("confirm-problem").replaceChildren();
  $("confirm").showModal();
  $("confirm-button").focus();
}

function fillDialog() {
  const { seats, kind, preview } = state.change;
  const plan = state.plan;
  const cur = preview.currency;
  const from = PAID.has(plan.status) ? plan.seats : 0;
  setText(
    "confirm-change",
    from === 0
      ? `You are buying ${plural(seats, "seat", "seats")}.`
      : `From ${plural(from, "seat", "seats")} to ${plural(seats, "seat", "seats")}.`,
  );
  setText("confirm-monthly", money(preview.monthly_total, cur));
  setText("confirm-due", money(kind === "purchase" ? preview.due_now : 0, cur));
  setText(
    "confirm-note",
    kind === "purchase"
      ? "The charge now goes to the account's payment method, prorated to the end of the " +
          "billing period."
      : "No charge and no refund now; the next renewal charges the new total.",
  );
}

async function confirmChange() {
  const { seats, kind } = state.change;
  const button = $("confirm-button");
  button.disabled = true;
  $("confirm-problem").replaceChildren();
  // A retry is the same change from the same plan: anything else is a new request.
  const from = `${state.plan.status}:${state.plan.seats}`;
  let pending = pendingChange();
  if (!pending || pending.seats !== seats || pending.kind !== kind || pending.from !== from) {
    pending = { seats, kind, from, key: newKey(), quoteId: null };
  }
  try {
    let result;
    if (kind === "purchase") {
      if (!pending.quoteId) {
        const quote = await state.api.request("POST", "/quotes", { body: { seats } });
        const shown = state.change.preview;
        pending.quoteId = quote.id;
        if (quote.due_now !== shown.due_now || quote.monthly_total !== shown.monthly_total) {
          // The price moved (a new day, a new price): show it and ask again.
          state.change.preview = quote;
          keepPending(pending);
          fillDialog();
          showProblem("confirm-problem", new Problem(409, { code: "quote_stale" }));
          return;
        }
      }
      keepPending(pending);
      result = await state.api.request("POST", "/purchases", {
        body: { seats, quote_id: pending.quoteId },
        key: pending.key,
      });
    } else {
      keepPending(pending);
      result = await state.api.request("POST", "/removals", {
        body: { seats },
        key: pending.key,
      });
    }
    keepPending(null);
    $("confirm").close();
    state.purchaseOpen = false;
    state.previewFor = null;
    if (kind === "purchase") {
      const invoice = result.invoice;
      say(
        `Done: you now have ${plural(seats, "seat", "seats")}. ` +
          `${money(invoice.total, invoice.currency)} was charged.`,
      );
    } else {
      say(`Done: you now have ${plural(seats, "seat", "seats")}.`);
    }
    await refresh();
  } catch (error) {
    if (isRetryable(error)) {
      // Kept: pressing the button again sends the same request with the same key, so a
      // purchase that did go through is answered again instead of charged again.
      keepPending(pending);
      showProblem("confirm-problem", error, { seats, action: kind });
      setText(
        "confirm-note",
        "Press Confirm seat purchase again to retry: you will not be charged twice.",
      );
      return;
    }
    keepPending(null);
    if (error instanceof Problem && error.code === "quote_stale") {
      state.preview = null;
      state.previewFor = null;
      try {
        state.change.preview = await currentPreview(seats);
        fillDialog();
      } catch {
        // the sentence below is enough
      }
      showProblem("confirm-problem", error, { seats, action: kind });
      return;
    }
    $("confirm").close();
    showProblem("problem", error, { seats, action: kind });
    state.previewFor = null;
    await refresh().catch(() => {});
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------
// Plan actions

async function startTrial() {
  clearMessages();
  try {
    await state.api.request("POST", "/trial", { key: newKey() });
    say("Your free trial has started. Assign seats to your agents below.");
    await refresh();
  } catch (error) {
    showProblem("problem", error, { action: "trial" });
  }
}

function openPurchase() {
  clearMessages();
  state.purchaseOpen = true;
  state.previewFor = null;
  render();
  $("seats-slider").focus();
}

async function payNow() {
  const outstanding = state.plan.outstanding_invoice;
  if (!outstanding) return;
  clearMessages();
  const button = $("pay-now");
  button.disabled = true;
  const storeKey = `seats.pay.${outstanding.id}`;
  const key = sessionStorage.getItem(storeKey) || newKey();
  sessionStorage.setItem(storeKey, key);
  try {
    const invoice = await state.api.request("POST", `/invoices/${outstanding.id}/pay`, { key });
    sessionStorage.removeItem(storeKey);
    say(`Thank you: ${money(invoice.total, invoice.currency)} was paid. Your plan is active again.`);
    await refresh();
  } catch (error) {
    // A decline is final for this key: the next press is a new attempt, with a new key.
    if (!isRetryable(error)) sessionStorage.removeItem(storeKey);
    showProblem("problem", error, { action: "pay" });
    await refresh().catch(() => {});
  } finally {
    button.disabled = false;
  }
}

async function toggleAgent(user, sw) {
  clearMessages();
  sw.disabled = true;
  const path = `/agents/${encodeURIComponent(user.user_id)}`;
  try {
    if (user.agent) {
      await state.api.request("DELETE", path);
      say(`${user.name} is no longer an agent.`);
    } else {
      await state.api.request("PUT", path);
      say(`${user.name} is now an agent.`);
    }
    await refresh();
    // Keep the keyboard where it was: the list was drawn again.
    const again = document.querySelector(`[aria-labelledby="user-${CSS.escape(user.user_id)}"]`);
    if (again) again.focus();
  } catch (error) {
    sw.disabled = false;
    showProblem("problem", error, { action: user.agent ? "unassign" : "assign" });
  }
}

// ---------------------------------------------------------------------------------------
// Start

function showSignIn(text) {
  $("loading").hidden = true;
  for (const id of ["plan", "seats", "agents", "invoices", "past-due"]) $(id).hidden = true;
  $("signin").hidden = false;
  if (text) setText("signin-text", text);
}

function wire() {
  $("start-trial").addEventListener("click", startTrial);
  $("buy-now").addEventListener("click", openPurchase);
  $("purchase").addEventListener("click", openPurchase);
  $("pay-now").addEventListener("click", payNow);
  $("update").addEventListener("click", openDialog);
  $("confirm-button").addEventListener("click", confirmChange);
  $("cancel-button").addEventListener("click", () => $("confirm").close());
  $("more-users").addEventListener("click", async () => {
    try {
      await loadUsers({ more: true });
      renderAgents();
    } catch (error) {
      showProblem("problem", error, {});
    }
  });
  $("seats-slider").addEventListener("input", (event) => setSeats(Number(event.target.value)));
  $("seats-number").addEventListener("input", (event) => {
    const value = Number(event.target.value);
    if (Number.isInteger(value) && value >= 0 && value <= 1_000_000_000) setSeats(value);
  });
  window.addEventListener("hashchange", () => {
    if (new URLSearchParams(window.location.hash.slice(1)).get("token")) start();
  });
}

async function start() {
  const token = takeToken();
  const claims = token && claimsOf(token);
  if (!claims) {
    showSignIn();
    return;
  }
  state.api = new Api(token, claims.account_id);
  state.me = claims.sub;
  state.role = null;
  try {
    await refresh();
  } catch (error) {
    if (error instanceof Problem && error.status === 401) {
      forgetToken();
      showSignIn(sentenceFor(error).text);
      return;
    }
    $("loading").hidden = true;
    showProblem("problem", error, {});
  }
}

wire();
start();
