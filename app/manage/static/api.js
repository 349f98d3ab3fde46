// The seats API as the page uses it: the token, requests, and problems turned into sentences.
//
// The token comes from the URL fragment (#token=...), which browsers never send to a server,
// and is kept in sessionStorage for this tab only. A real front end gets it from its own
// sign-in instead (see the README).

import { day } from "./format.js";

const TOKEN_KEY = "seats.token";

/** The token from the fragment (then removed from the address bar) or from this tab's storage. */
export function takeToken() {
  const params = new URLSearchParams(window.location.hash.slice(1));
  const fromFragment = params.get("token");
  if (fromFragment) {
    sessionStorage.setItem(TOKEN_KEY, fromFragment);
    // Keep the token out of the history, bookmarks and screenshots of the address bar.
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** The claims of a JWT, unverified: the service verifies it; the page only needs the ids. */
export function claimsOf(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = atob(part + "=".repeat((4 - (part.length % 4)) % 4));
    const claims = JSON.parse(json);
    if (typeof claims.sub === "string" && typeof claims.account_id === "string") {
      return claims;
    }
  } catch {
    // fall through: not a token this page can use
  }
  return null;
}

/** A request that never reached an answer (offline, connection reset): safe to retry. */
export class NetworkError extends Error {}

/** An answer with a problem+json body (RFC 9457). */
export class Problem extends Error {
  constructor(status, body) {
    super(body && typeof body.detail === "string" ? body.detail : `HTTP ${status}`);
    this.status = status;
    this.code = body && typeof body.code === "string" ? body.code : "unknown";
    this.body = body || {};
  }
}

/** A new Idempotency-Key. */
export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export class Api {
  constructor(token, accountId) {
    this.token = token;
    this.base = `/v1/accounts/${encodeURIComponent(accountId)}/conversations`;
  }

  /** JSON of a 2xx answer; throws Problem for an error answer, NetworkError for no answer. */
  async request(method, path, { body, key } = {}) {
    const headers = { Authorization: `Bearer ${this.token}`, Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (key) headers["Idempotency-Key"] = key;
    let response;
    try {
      response = await fetch(this.base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit",
        cache: "no-store",
      });
    } catch (error) {
      throw new NetworkError(String(error));
    }
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null; // a proxy's HTML error page, say: shown as a sentence below, never raw
    }
    if (!response.ok) throw new Problem(response.status, data);
    return data;
  }

  get(path) {
    return this.request("GET", path);
  }

  /** The body of a document (an invoice's PDF) as a Blob; errors as ``request`` throws them. */
  async blob(path) {
    let response;
    try {
      response = await fetch(this.base + path, {
        headers: { Authorization: `Bearer ${this.token}` },
        credentials: "omit",
        cache: "no-store",
      });
    } catch (error) {
      throw new NetworkError(String(error));
    }
    if (!response.ok) {
      const data = await response.json().catch(() => null);
      throw new Problem(response.status, data);
    }
    return response.blob();
  }
}

const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;

// What the payment gateway's decline codes mean, in words: a person never reads a code.
const DECLINES = {
  card_declined: "The bank declined the card without giving a reason.",
  generic_decline: "The bank declined the card without giving a reason.",
  do_not_honor: "The bank declined the card without giving a reason.",
  insufficient_funds: "The card has insufficient funds.",
  expired_card: "The card has expired.",
  incorrect_cvc: "The card's security code is incorrect.",
  incorrect_number: "The card number is incorrect.",
  processing_error: "The bank could not process the payment.",
  lost_card: "The card was reported lost.",
  stolen_card: "The card was reported stolen.",
  card_not_supported: "The card does not support this kind of payment.",
  authentication_required: "The bank asks for the card holder's authentication.",
};

/** A decline reason as a sentence; an unknown code is not shown (it means nothing to people). */
export function declineSentence(reason) {
  if (!reason) return "The bank declined the payment.";
  if (reason.startsWith("uncollectible")) return "It was not paid in time.";
  return DECLINES[reason] || "The bank declined the payment without a reason we can show.";
}

/**
 * What a person should read for a problem. ``context`` may carry ``seats`` (the total asked
 * for) and ``action`` ("purchase", "removal", "assign", "pay", ...).
 */
export function sentenceFor(problem, context = {}) {
  if (problem instanceof NetworkError) {
    return {
      text: "We couldn't reach the seats service. Check your connection and try again.",
    };
  }
  const b = problem.body || {};
  switch (problem.code) {
    case "seats_assigned": {
      const assigned = Number(b.assigned);
      const seats = Number(context.seats);
      const excess = Number.isFinite(seats) ? assigned - seats : null;
      const text =
        context.action === "removal" && excess > 0
          ? `${plural(assigned, "agent is", "agents are")} assigned, so the plan can't go ` +
            `below ${assigned} seats. Unassign ${plural(excess, "agent", "agents")} first, ` +
            `then remove the seats.`
          : `${plural(assigned, "agent is", "agents are")} assigned: buy at least ` +
            `${assigned} seats` +
            (excess > 0 ? `, or unassign ${plural(excess, "agent", "agents")} first.` : ".");
      return { text, link: { href: "#agents", label: "Go to the agents list" } };
    }
    case "payment_declined":
      if (context.action === "pay") {
        return {
          text:
            `This payment was declined too. ${declineSentence(declineReason(b))} Nothing was ` +
            "charged. Update the account's payment method, then pay again.",
        };
      }
      return {
        text:
          `Your card was declined. ${declineSentence(declineReason(b))} Nothing was charged ` +
          "and your seats did not change. Update the account's payment method, then try again.",
      };
    case "past_due":
      return {
        text: "Your account has an unpaid invoice. Pay it (Pay now, above) before buying seats.",
      };
    case "not_primary_admin":
      return { text: "Only the primary account admin can buy or remove seats." };
    case "not_admin":
      return { text: "Only admins can assign seats." };
    case "seats_scheduled_for_removal": {
      const seats = Number(b.scheduled_seats);
      const when = typeof b.effective_at === "string" ? ` on ${day(b.effective_at)}` : "";
      return {
        text:
          `The plan goes down to ${plural(seats, "seat", "seats")}${when}, and every seat it ` +
          "keeps is taken. Cancel the scheduled decrease (under Your plan) to assign more agents.",
      };
    }
    case "no_paid_period":
      return {
        text: "A free trial has no paid period to wait for: the seats can only change now.",
      };
    case "no_scheduled_change":
      return { text: "No decrease is scheduled any more: it was canceled or has taken effect." };
    case "no_empty_seat":
      return { text: "Every seat is taken. Buy more seats, or unassign an agent first." };
    case "no_active_plan":
      return context.action === "removal"
        ? { text: "A free trial has a fixed number of seats. Purchase seats to choose your own." }
        : { text: "Start a free trial or buy seats before assigning agents." };
    case "trial_already_used":
      return { text: "This account has already used its free trial. Buy seats to continue." };
    case "already_subscribed":
      return { text: "This account already has a paid plan." };
    case "quote_stale":
      return { text: "The price changed since you looked. Check the new amounts and confirm again." };
    case "purchase_in_progress":
      return { text: "Another purchase is waiting for its payment. Try again in a minute." };
    case "renewal_due":
      return { text: "Your plan is being renewed right now. Try again in a minute." };
    case "payment_pending":
    case "payment_unavailable":
      return {
        text:
          "The payment is not finished yet. Try again in a moment: you will not be charged twice.",
      };
    case "idempotency_key_in_use":
      return { text: "Your previous try is still being processed. Wait a moment, then try again." };
    case "not_an_increase":
    case "not_a_decrease":
      return { text: "Choose a number of seats different from the one you have now." };
    case "invoice_not_payable":
      return { text: "That invoice is already settled. Nothing more is due." };
    case "user_not_found":
      return { text: "That user is no longer in this account." };
    case "not_an_agent":
      return { text: "That user was not an agent any more." };
    case "validation_error":
      return { text: "That number of seats is not valid. Choose a whole number." };
    case "unauthenticated":
      return { text: "Your sign-in has expired. Open this page again from your account." };
    case "unknown_user":
      return { text: "Your user is not part of this account." };
    case "not_found":
      return { text: "This account has no Conversations plan here." };
    default:
      // Every problem of the service carries a sentence in ``detail``.
      if (typeof b.detail === "string" && b.detail) return { text: b.detail };
      return { text: "Something went wrong on our side. Try again in a moment." };
  }
}

/** The gateway's reason carried by a ``payment_declined`` problem. */
function declineReason(body) {
  if (typeof body.reason === "string") return body.reason;
  const match = typeof body.detail === "string" && body.detail.match(/\(([a-z_]+)\)/);
  return match ? match[1] : null;
}

/** Answers after which the same request, with the same key, may still succeed. */
export function isRetryable(problem) {
  return (
    problem instanceof NetworkError ||
    (problem instanceof Problem &&
      (problem.status >= 500 ||
        ["purchase_in_progress", "idempotency_key_in_use", "renewal_due"].includes(problem.code)))
  );
}
