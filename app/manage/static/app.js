// Manage Seats: the plan, the seat slider with its quote, the confirmation dialog, the agents.
// Every number shown comes from the service's public API; the page computes no price itself.

import {
  Api,
  NetworkError,
  Problem,
  claimsOf,
  declineSentence,
  forgetToken,
  isRetryable,
  newKey,
  sentenceFor,
  takeToken,
} from "./api.js";
import { day, dayTime, money, plural } from "./format.js";

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
const ACTIVE = new Set(["trialing", "active", "past_due"]); // agents can use the inbox
const ROLE_LABELS = { primary_admin: "Primary admin", admin: "Admin", user: "User" };
const MAX_SEATS = 1_000_000_000;

const state = {
  api: null,
  me: null, // the token's user id
  role: null, // the caller's role, from the summary's ``caller``
  plan: null, // the summary
  users: [],
  usersCursor: null,
  invoices: [],
  purchaseOpen: false, // "Purchase" / "Buy now" pressed on a plan without paid seats
  preview: null, // the last quote preview, for the slider's value
  previewFor: null,
  previewTimer: null,
  previewAbort: 0,
  change: null, // the change the dialog shows: {seats, kind, when, preview}
  chosen: null, // the total the admin chose, kept across a refusal and a refresh
  busy: false, // a change is being sent: the controls wait for its answer
};

// ---------------------------------------------------------------------------------------
// Messages

/** A sentence in ``target`` (a status box), scrolled into view with the focus on it. */
function say(text, target = "notice", { focus = true } = {}) {
  const box = $(target);
  box.textContent = text;
  if (focus) bringIntoView(box);
}

function bringIntoView(box) {
  box.scrollIntoView({ block: "center" });
  box.focus({ preventScroll: true });
}

function showProblem(target, error, context, { focus = true } = {}) {
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
  if (focus && !box.closest("[hidden]")) bringIntoView(box);
}

function clearMessages() {
  $("notice").textContent = "";
  $("change-result").textContent = "";
  $("problem").replaceChildren();
  $("pay-problem").replaceChildren();
}

// ---------------------------------------------------------------------------------------
// Loading

async function loadPlan() {
  state.plan = await state.api.get("");
}

/** By name, as a person looks for someone (the service lists them newest first). */
function byName(a, b) {
  return (a.name || a.user_id).localeCompare(b.name || b.user_id, undefined, {
    sensitivity: "base",
  });
}

async function loadUsers({ more = false } = {}) {
  // Only admins may read the directory: the summary says who the caller is, so a plain
  // user's page never asks (and never meets a 403).
  if (!isAdmin()) {
    state.users = [];
    state.usersCursor = null;
    return;
  }
  const cursor = more && state.usersCursor ? `&cursor=${encodeURIComponent(state.usersCursor)}` : "";
  const page = await state.api.get(`/users?limit=100${cursor}`);
  state.users = (more ? [...state.users, ...page.data] : page.data).sort(byName);
  state.usersCursor = page.next_cursor;
}

async function loadInvoices() {
  if (!isAdmin()) return;
  const page = await state.api.get("/invoices?limit=10");
  state.invoices = page.data;
}

async function refresh() {
  state.preview = null; // priced against the plan as it was: ask again for the slider's value
  await loadPlan();
  state.role = state.plan.caller ? state.plan.caller.role : null;
  await loadUsers();
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
  } else if (plan.status === "past_due" && plan.outstanding_invoice) {
    // No "next renewal" while one is unpaid: the date that matters is the cancellation.
    setText("fact-date-label", "Canceled unless paid by");
    setText("fact-date", day(plan.outstanding_invoice.cancels_at));
  } else if (paid && plan.next_renewal_at) {
    setText("fact-date-label", "Next renewal");
    setText("fact-date", day(plan.next_renewal_at));
  } else {
    dateRow.hidden = true;
  }

  const kept = `Your agents (${plan.assigned.toLocaleString()}) are kept but inactive until you ` +
    "purchase seats.";
  const texts = {
    none: plan.trial
      ? "You have no Conversations seats yet. Buy the seats you need."
      : "You have no Conversations seats yet. Start a free trial of " +
        `${plural(plan.trial_seats, "seat", "seats")}, or buy the seats you need now.`,
    trialing: plan.trial
      ? `Your free trial of ${plan.trial.seats} seats ends on ${day(plan.trial.ends_at)}. ` +
        "Purchase seats to keep your agents working after that."
      : "You are on a free trial.",
    trial_expired:
      `Your free trial ended${plan.trial ? ` on ${day(plan.trial.ends_at)}` : ""}. ${kept}`,
    canceled: `Your plan was canceled. ${kept}`,
    active: `${plural(plan.seats, "seat", "seats")}, ${money(plan.monthly_total, cur)} per month` +
      (plan.next_renewal_at ? `, renewing on ${day(plan.next_renewal_at)}.` : "."),
    past_due: "The last renewal payment failed. Agents keep working until it is paid.",
  };
  setText("plan-text", texts[plan.status] || "");

  const primary = isPrimary();
  $("start-trial").hidden = !(primary && plan.status === "none" && !plan.trial);
  $("buy-now").hidden = !(primary && plan.status === "none");
  $("purchase").hidden = !(primary && !paid && plan.status !== "none");
  const roleNote = $("role-note");
  roleNote.hidden = primary;
  roleNote.textContent = primary ? "" : roleText();

  renderScheduled();
  renderAlerts();
  renderPastDue();
  renderSeats();
  renderAgents();
  renderInvoices();
}

/** Who the primary admin is, by name, for telling others whom to ask. */
function primaryAdminName() {
  const primary = state.plan.primary_admin;
  return primary ? primary.name || primary.user_id : "the primary account admin";
}

/** What the caller may do, when they are not the primary admin. */
function roleText() {
  const plan = state.plan;
  const who = primaryAdminName();
  const asks = plan.primary_admin ? `${who}, the primary account admin,` : who;
  if (isAdmin()) {
    return `Only ${asks} can start a trial, buy or remove seats and pay invoices: ask ${
      plan.primary_admin ? who : "them"
    }. You can assign seats to agents below.`;
  }
  const me = plan.caller;
  const seat = me && me.agent
    ? ACTIVE.has(plan.status)
      ? "You are an agent: you have a seat and can use the inbox."
      : "You are an agent, but your seat is inactive until the account has seats."
    : "You are not an agent: you have no seat. Ask an admin to assign you one.";
  return `${seat} Only ${asks} can buy seats and pay invoices.`;
}

/** A decrease waiting for the period's end (R15): "25 seats until ..., then 10", with Cancel
 * for the primary admin. */
function renderScheduled() {
  const plan = state.plan;
  const change = plan.scheduled_change;
  const box = $("scheduled");
  box.hidden = !change;
  if (!change) return;
  setText(
    "scheduled-text",
    `${plural(plan.seats, "seat", "seats")} until ${day(change.effective_at)}, then ` +
      `${change.seats.toLocaleString()}.`,
  );
  $("cancel-scheduled").hidden = !isPrimary();
}

/** R16's facts in force now, as sentences: a full plan is said once (not also as "100 %"). */
function alertText(alert, plan) {
  const cur = plan.currency;
  const primary = isPrimary();
  const buyMore = primary ? "buy more" : `ask ${primaryAdminName()} to buy more`;
  switch (alert.type) {
    case "seats.exhausted":
      return `All ${plural(plan.seats, "seat is", "seats are")} assigned: ${buyMore} to add agents.`;
    case "seats.threshold_reached":
      return `${alert.threshold} % of the seats are assigned ` +
        `(${plan.assigned.toLocaleString()} of ${plan.seats.toLocaleString()}).`;
    case "trial.ending":
      return `Your free trial ends on ${day(alert.at)}: ` +
        (primary
          ? "purchase seats to keep your agents working."
          : `ask ${primaryAdminName()} to purchase seats to keep the agents working.`);
    case "renewal.upcoming":
      return `Your plan renews on ${day(alert.at)}: ${money(alert.amount, cur)} will be ` +
        "charged to the account's payment method.";
    default:
      return null;
  }
}

function renderAlerts() {
  const plan = state.plan;
  const alerts = plan.alerts || [];
  const full = alerts.some((a) => a.type === "seats.exhausted");
  const texts = alerts
    .filter((a) => !(full && a.type === "seats.threshold_reached" && a.threshold >= 100))
    .map((a) => alertText(a, plan))
    .filter(Boolean);
  $("alerts").hidden = texts.length === 0;
  $("alert-list").replaceChildren(
    ...texts.map((text) => {
      const li = document.createElement("li");
      li.textContent = text;
      return li;
    }),
  );
}

function renderPastDue() {
  const plan = state.plan;
  const outstanding = plan.outstanding_invoice;
  const banner = $("past-due");
  banner.hidden = !(plan.status === "past_due" && outstanding);
  if (banner.hidden) return;
  const primary = isPrimary();
  setText(
    "past-due-text",
    `The renewal of ${money(outstanding.total, plan.currency)} due since ` +
      `${day(outstanding.due_since)} was declined. ${declineSentence(outstanding.failure_reason)} ` +
      "Your agents keep working meanwhile; buying seats is paused until it is paid.",
  );
  setText(
    "past-due-deadline",
    `Unless it is paid, the plan will be canceled on ${day(outstanding.cancels_at)}. ` +
      (primary
        ? "Update the payment method if needed, then pay now."
        : `Only ${primaryAdminName()} can pay it.`),
  );
  $("pay-now").hidden = !primary;
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
  section.hidden = !show;
  if (!show) return;
  // Buying is paused while a renewal is unpaid (R9): the controls say so and wait.
  const paused = plan.status === "past_due";
  const pausedNote = $("seats-paused");
  pausedNote.hidden = !paused;
  pausedNote.textContent = paused
    ? "Buying and removing seats is paused until the unpaid renewal is paid (Pay now, above)."
    : "";
  // The admin's chosen total survives a refusal and a refresh; a new plan starts afresh.
  setSeats(state.chosen === null ? startingSeats(plan) : state.chosen);
}

function renderAgents() {
  const plan = state.plan;
  const section = $("agents");
  section.hidden = !isAdmin();
  if (section.hidden) return;
  setText(
    "agents-text",
    `${plural(plan.assigned, "agent", "agents")} of ${plural(plan.seats, "seat", "seats")}.` +
      (plan.scheduled_change
        ? ` ${plural(plan.available, "seat", "seats")} can still be assigned: the plan keeps ` +
          `${plan.scheduled_change.seats.toLocaleString()} from ` +
          `${day(plan.scheduled_change.effective_at)}.`
        : plan.available
          ? ` ${plural(plan.available, "seat is", "seats are")} empty.`
          : ""),
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
  $("invoice-list").replaceChildren(...state.invoices.map(receipt));
}

const STATUS_WORDS = {
  pending: "Unpaid",
  paid: "Paid",
  failed: "Declined: not paid",
  void: "Canceled: not charged",
  uncollectible: "Not paid: written off",
};

/** What a line says: seats before -> after when the ledger says so (else the seats a
 * purchase added), the unit price, the prorated days, the period. */
function lineText(line, inv) {
  const seats =
    Number.isInteger(line.seats_before) && Number.isInteger(line.seats_after)
      ? `Seats ${line.seats_before.toLocaleString()} → ${line.seats_after.toLocaleString()}`
      : inv.kind === "purchase"
        ? plural(line.quantity, "seat added", "seats added")
        : plural(line.quantity, "seat", "seats");
  const days = Number.isInteger(line.days) && Number.isInteger(line.days_in_period)
    ? ` for ${line.days} of ${line.days_in_period} days`
    : "";
  return (
    `${seats}: ${line.quantity.toLocaleString()} × ${money(line.unit_price, inv.currency)}` +
    `${days}, ${day(line.period_start)} to ${day(line.period_end)}`
  );
}

function receipt(inv) {
  const li = document.createElement("li");
  const left = document.createElement("div");
  left.className = "who";
  const title = document.createElement("div");
  title.className = "name";
  // A declined purchase bought nothing: it was an attempt, and says so.
  const kind = inv.kind === "renewal" ? "Renewal" : "Purchase";
  const what = inv.status === "failed" ? `${kind} attempt` : kind;
  title.textContent = inv.number ? `${what} ${inv.number}` : what;
  const when = document.createElement("div");
  when.className = "detail";
  when.textContent = dayTime(inv.created_at);
  const detail = document.createElement("div");
  detail.className = "detail";
  detail.textContent = inv.lines.map((l) => lineText(l, inv)).join("; ");
  left.append(title, when, detail);
  if (inv.status === "failed" && inv.failure_reason) {
    const why = document.createElement("div");
    why.className = "detail";
    why.textContent = declineSentence(inv.failure_reason);
    left.append(why);
  }
  const right = document.createElement("div");
  right.className = "receipt-side";
  const amount = document.createElement("span");
  amount.className = "amount";
  amount.textContent = money(inv.total, inv.currency);
  const status = document.createElement("span");
  status.className = `status-${inv.status}`;
  status.textContent = ` ${STATUS_WORDS[inv.status] || inv.status}`;
  right.append(amount, status);
  if (inv.number) {
    // The document (§10): fetched with the token, so it is a button, not a plain link.
    const download = document.createElement("button");
    download.type = "button";
    download.className = "download";
    download.textContent = "Download PDF";
    download.setAttribute("aria-label", `Download PDF of ${inv.number}`);
    download.addEventListener("click", () => downloadPdf(inv, download));
    right.append(download);
  }
  li.append(left, right);
  return li;
}

async function downloadPdf(inv, button) {
  clearMessages();
  button.disabled = true;
  try {
    const blob = await state.api.blob(`/invoices/${encodeURIComponent(inv.id)}/pdf`);
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = `${inv.number}.pdf`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (error) {
    showProblem("problem", error, { action: "download" });
  } finally {
    button.disabled = false;
  }
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

/** The slider's top: twice the plan (so each step stays wide enough to hit on a phone);
 * the number field beside it takes any total (R2: no cap). */
function sliderTop(seats) {
  const plan = state.plan;
  const base = Math.max(plan.seats, plan.assigned, plan.trial_seats || 0, 5);
  return Math.max(2 * base, seats);
}

/** Why the typed total cannot be sent, in words; null when it is a whole number in range. */
function inputProblem(raw) {
  if (raw.trim() === "") return "Enter a number of seats.";
  const value = Number(raw);
  if (!Number.isFinite(value)) return "Enter a number of seats, in digits.";
  if (value < 0) return "The number of seats can't be negative.";
  if (!Number.isInteger(value)) return "Seats are whole numbers: enter a number without decimals.";
  if (value > MAX_SEATS) return `Enter at most ${MAX_SEATS.toLocaleString()} seats.`;
  return null;
}

/** Why the change to ``seats`` would be refused before any dialog (R4), or null. */
function blockedBecause(seats) {
  const plan = state.plan;
  if (changeKind(seats) === "removal" && seats < plan.assigned) {
    const excess = plan.assigned - seats;
    return (
      `${plural(plan.assigned, "agent is", "agents are")} assigned: unassign ` +
      `${plural(excess, "agent", "agents")} before going down to ${plural(seats, "seat", "seats")}.`
    );
  }
  return null;
}

function setSeats(seats, { fromNumber = false } = {}) {
  const slider = $("seats-slider");
  const number = $("seats-number");
  state.chosen = seats;
  slider.max = String(sliderTop(seats));
  slider.value = String(seats);
  slider.setAttribute("aria-valuetext", plural(seats, "seat", "seats"));
  if (!fromNumber && number.value !== String(seats)) number.value = String(seats);
  setInputError(null);
  const blocked = blockedBecause(seats);
  const box = $("seats-blocked");
  box.replaceChildren();
  if (blocked) {
    const link = document.createElement("a");
    link.href = "#agents";
    link.textContent = "Go to the agents list";
    link.addEventListener("click", goToAgents);
    box.append(`${blocked} `, link);
  }
  updateControls();
  schedulePreview(seats);
}

function setInputError(text) {
  const number = $("seats-number");
  setText("seats-error", text || "");
  if (text) number.setAttribute("aria-invalid", "true");
  else number.removeAttribute("aria-invalid");
}

/** Update is enabled only for a change the service would accept, when nothing is running. */
function updateControls() {
  const plan = state.plan;
  const paused = plan.status === "past_due";
  const invalid = Boolean($("seats-error").textContent);
  const seats = state.chosen;
  $("seats-slider").disabled = paused || state.busy;
  $("seats-number").disabled = paused || state.busy;
  $("update").disabled =
    paused ||
    state.busy ||
    invalid ||
    seats === null ||
    changeKind(seats) === null ||
    blockedBecause(seats) !== null;
}

function goToAgents(event) {
  event.preventDefault();
  if ($("confirm").open) $("confirm").close();
  const section = $("agents");
  section.scrollIntoView();
  section.focus();
}

function schedulePreview(seats) {
  if (state.previewFor === seats && state.preview) return showPreview();
  state.previewFor = seats;
  state.preview = null;
  setText("price-monthly", "…");
  setText("price-due", "…");
  setText("price-note", "");
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
    note = ""; // said beside Update, with a link to the agents (blockedBecause)
  } else if (kind === "purchase") {
    note =
      `Charged now for ${plural(q.proration.days_remaining, "day", "days")} of ` +
      `${q.proration.days_in_period}, until ${day(q.proration.period_end)}; then ` +
      `${money(q.cycle_total, cur)} per ${cycleWord(q.billing_cycle)}.`;
  } else if (kind === "removal") {
    note = offersPeriodEnd(kind)
      ? "Removed seats go at the end of the period, or now if you choose: there is no refund " +
        "either way."
      : "Removing seats takes effect at once. There is no refund for the current period.";
  }
  setText("price-note", note);
}

/** The preview of a decrease at ``when`` ("now" or "period_end"), for the dialog. */
async function previewWhen(seats, when) {
  if (when === "now") return currentPreview(seats);
  return state.api.get(`/quote-preview?seats=${seats}&effective=${when}`);
}

/** A decrease on a paid plan may wait for the period's end (R15); a trial has no paid
 * period, and a past-due plan's changes are paused. */
function offersPeriodEnd(kind) {
  return kind === "removal" && state.plan.status === "active";
}

function chosenWhen() {
  const checked = document.querySelector('input[name="when"]:checked');
  return checked ? checked.value : "now";
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

async function changeWhen() {
  if (!state.change) return;
  const when = chosenWhen();
  const { seats } = state.change;
  $("confirm-problem").replaceChildren();
  try {
    const preview = await previewWhen(seats, when);
    state.change = { ...state.change, when, preview };
    fillDialog();
  } catch (error) {
    showProblem("confirm-problem", error, { seats, action: state.change.kind });
  }
}

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

const cycleWord = (cycle) => (cycle === "yearly" ? "year" : "month");

async function openDialog() {
  clearMessages();
  const seats = state.chosen;
  const kind = changeKind(seats);
  if (!kind || blockedBecause(seats)) return;
  // The period's end first: there is no refund either way, so keeping the paid seats until
  // then costs nothing and loses nothing.
  const offer = offersPeriodEnd(kind);
  const when = offer ? "period_end" : "now";
  for (const radio of document.querySelectorAll('input[name="when"]')) {
    radio.checked = radio.value === when;
  }
  let preview;
  try {
    preview = await previewWhen(seats, when);
  } catch (error) {
    showProblem("problem", error, { seats, action: kind });
    return;
  }
  state.change = { seats, kind, when, preview };
  $("confirm-when").hidden = !offer;
  if (offer) {
    setText(
      "when-period-end",
      `At the end of the period, on ${day(preview.effective_at)} (recommended: the seats are ` +
        "paid for until then)",
    );
  }
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
  const lines = [
    `${money(preview.unit_price, cur)} per seat per month × ${plural(seats, "seat", "seats")} = ` +
      `${money(preview.monthly_total, cur)} per month.`,
  ];
  const p = preview.proration;
  if (kind === "purchase") {
    const added = Math.max(seats - from, 0);
    lines.push(
      `Charged now: ${plural(added, "added seat", "added seats")} × ` +
        `${plural(p.days_remaining, "day", "days")} left of the ${p.days_in_period}-day period ` +
        `(to ${day(p.period_end)}) = ${money(preview.due_now, cur)}.`,
      plan.payment_method
        ? `The charge goes to the account's payment method ${plan.payment_method}.`
        : "The charge goes to the account's payment method.",
    );
    if (plan.status === "trialing" && plan.trial) {
      lines.push(
        `Buying ends your free trial now (it would have run until ${day(plan.trial.ends_at)}); ` +
          "the paid plan starts today.",
      );
    }
    lines.push(
      `Then ${money(preview.cycle_total, cur)} per ${cycleWord(preview.billing_cycle)} from ` +
        `${day(p.period_end)}.`,
    );
  } else {
    const renewsAt = preview.next_renewal_at || p.period_end;
    const renewal = preview.next_renewal_total ?? preview.cycle_total;
    lines.push(
      state.change.when === "period_end"
        ? `Takes effect on ${day(preview.effective_at)}: the ` +
            `${plural(from, "seat stays", "seats stay")} usable until then. No charge and no ` +
            "refund."
        : "Takes effect now. No charge and no refund for the current period.",
      `The next renewal, on ${day(renewsAt)}, charges ${money(renewal, cur)} ` +
        `(${plural(seats, "seat", "seats")}).`,
    );
  }
  $("confirm-breakdown").replaceChildren(
    ...lines.map((text) => {
      const li = document.createElement("li");
      li.textContent = text;
      return li;
    }),
  );
  setText("confirm-note", "");
}

/** While a change is sent: "Processing…" and every control waits for the answer. */
function setBusy(busy) {
  state.busy = busy;
  const button = $("confirm-button");
  button.disabled = busy;
  $("cancel-button").disabled = busy;
  button.textContent = busy ? "Processing…" : "Confirm seat purchase";
  $("confirm").setAttribute("aria-busy", String(busy));
  updateControls();
}

async function confirmChange() {
  if (state.busy) return;
  const { seats, kind, when } = state.change;
  setBusy(true);
  $("confirm-problem").replaceChildren();
  // A retry is the same change from the same plan: anything else is a new request.
  const from = `${state.plan.status}:${state.plan.seats}`;
  let pending = pendingChange();
  if (
    !pending ||
    pending.seats !== seats ||
    pending.kind !== kind ||
    pending.when !== when ||
    pending.from !== from
  ) {
    pending = { seats, kind, when, from, key: newKey(), quoteId: null };
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
        body: { seats, effective: when },
        key: pending.key,
      });
    }
    keepPending(null);
    setBusy(false);
    const had = state.plan.seats;
    $("confirm").close();
    state.purchaseOpen = false;
    state.previewFor = null;
    state.chosen = null;
    await refresh();
    // Beside Update, where the admin was looking, with the focus on it.
    if (kind === "purchase") {
      const invoice = result.invoice;
      say(
        `Done: you now have ${plural(seats, "seat", "seats")}. ` +
          `${money(invoice.total, invoice.currency)} was charged.`,
        "change-result",
      );
    } else if (when === "period_end" && result.scheduled_change) {
      say(
        `Done: you keep ${plural(had, "seat", "seats")} until ` +
          `${day(result.scheduled_change.effective_at)}, then ` +
          `${plural(seats, "seat", "seats")}. Nothing is charged now.`,
        "change-result",
      );
    } else {
      say(`Done: you now have ${plural(seats, "seat", "seats")}.`, "change-result");
    }
  } catch (error) {
    if (isRetryable(error)) {
      // Kept: pressing the button again sends the same request with the same key, so a
      // purchase that did go through is answered again instead of charged again.
      keepPending(pending);
      setBusy(false);
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
      setBusy(false);
      showProblem("confirm-problem", error, { seats, action: kind });
      return;
    }
    // Refused: said in the dialog, where the admin is looking; the chosen total is kept.
    setBusy(false);
    await refresh().catch(() => {});
    showProblem("confirm-problem", error, { seats, action: kind });
  } finally {
    if (state.busy) setBusy(false);
  }
}

// ---------------------------------------------------------------------------------------
// Plan actions

async function startTrial() {
  clearMessages();
  try {
    await state.api.request("POST", "/trial", { key: newKey() });
    await refresh();
    say("Your free trial has started. Assign seats to your agents below.");
  } catch (error) {
    showProblem("problem", error, { action: "trial" });
  }
}

async function cancelScheduled() {
  clearMessages();
  const button = $("cancel-scheduled");
  button.disabled = true;
  try {
    await state.api.request("DELETE", "/scheduled-change");
    await refresh();
    say(
      `The decrease is canceled: you keep ${plural(state.plan.seats, "seat", "seats")}.`,
    );
  } catch (error) {
    await refresh().catch(() => {});
    showProblem("problem", error, { action: "cancel" });
  } finally {
    button.disabled = false;
  }
}

function openPurchase() {
  clearMessages();
  state.purchaseOpen = true;
  state.previewFor = null;
  state.chosen = null;
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
    await refresh();
    say(`Thank you: ${money(invoice.total, invoice.currency)} was paid. Your plan is active again.`);
  } catch (error) {
    // A decline is final for this key: the next press is a new attempt, with a new key.
    if (!isRetryable(error)) sessionStorage.removeItem(storeKey);
    await refresh().catch(() => {});
    // One box, in the banner the admin pressed: the banner's own text already names the
    // renewal, so the sentence says what happened to this attempt.
    showProblem("pay-problem", error, { action: "pay" });
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
      say(`${user.name} is no longer an agent.`, "notice", { focus: false });
    } else {
      await state.api.request("PUT", path);
      say(`${user.name} is now an agent.`, "notice", { focus: false });
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
  for (const id of ["plan", "seats", "agents", "invoices", "past-due", "alerts"]) {
    $(id).hidden = true;
  }
  $("signin").hidden = false;
  if (text) setText("signin-text", text);
}

function wire() {
  $("start-trial").addEventListener("click", startTrial);
  $("buy-now").addEventListener("click", openPurchase);
  $("purchase").addEventListener("click", openPurchase);
  $("pay-now").addEventListener("click", payNow);
  $("cancel-scheduled").addEventListener("click", cancelScheduled);
  for (const radio of document.querySelectorAll('input[name="when"]')) {
    radio.addEventListener("change", changeWhen);
  }
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
    const field = event.target;
    // A browser reports what is not a number as "" with badInput: say so as well.
    const raw = field.validity.badInput ? "?" : field.value;
    const problem = inputProblem(raw);
    if (problem) {
      setInputError(problem);
      updateControls();
      return;
    }
    setSeats(Number(raw), { fromNumber: true });
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
