// How the inbox front end uses the types generated from the service's OpenAPI document.
// tests/clients/test_typescript_types.py type-checks it with `tsc --strict`, then checks that
// each mistake marked below fails to compile.
import type { components, operations } from "./seats";

type Plan = components["schemas"]["Plan"];
type PurchaseConflict =
  operations["purchaseSeats"]["responses"][409]["content"]["application/problem+json"];
type RemovalConflict =
  operations["removeSeats"]["responses"][409]["content"]["application/problem+json"];
type Declined = operations["payInvoice"]["responses"][402]["content"]["application/problem+json"];
type Invalid = operations["listAgents"]["responses"][422]["content"]["application/problem+json"];
type PurchaseHeaders = operations["purchaseSeats"]["parameters"]["header"];
type Purchased = operations["purchaseSeats"]["responses"][201];

export function banner(plan: Plan): string {
  switch (plan.status) {
    case "past_due":
      return "Your last payment failed: pay now to keep buying seats.";
    case "trialing":
      return `Trial: ${plan.seats} seats until ${plan.trial?.ends_at ?? "soon"}.`;
    default:
      return `${plan.assigned} of ${plan.seats} seats assigned.`;
  }
}

export function explainPurchase(problem: PurchaseConflict): string {
  switch (problem.code) {
    case "seats_assigned":
      return `Buy at least ${problem.assigned ?? 0} seats.`;
    case "not_an_increase":
      return `You already have ${problem.current ?? 0} seats.`;
    case "past_due":
      return "Pay the outstanding invoice first.";
    case "quote_stale":
      return "The price changed: review the new quote.";
    default:
      return problem.detail;
  }
}

export function explainRemoval(problem: RemovalConflict): string {
  const assigned: number | undefined = problem.assigned;
  return problem.code === "seats_assigned" ? `${assigned} seats are assigned.` : problem.title;
}

export function declinedInvoice(problem: Declined): string {
  return problem.invoice_id ?? "";
}

export function failingFields(problem: Invalid): string[] {
  // `errors` is left out, never null: check for undefined.
  return problem.errors === undefined ? [] : problem.errors.map((e) => e.loc.join("."));
}

export const headers: PurchaseHeaders = { "Idempotency-Key": "7b0d1d0e-key" };

export function replayed(response: Purchased): boolean {
  return response.headers["Idempotent-Replayed"] === "true";
}
// MISTAKES: each line below replaces the marker in its own copy, which must not compile.
// @mistake misspelled-code: export const m1 = (p: PurchaseConflict) => p.code === "seats_asigned";
// @mistake misspelled-case: export function m2(p: PurchaseConflict) { switch (p.code) { case "past_deu": return 1; default: return 0; } }
// @mistake wrong-status: export const m3: Plan["status"] = "expired";
// @mistake null-key: export const m4: PurchaseHeaders = { "Idempotency-Key": null };
// @mistake errors-null: export const m5 = (p: Invalid): { loc: string[] }[] | null => p.errors;
// @mistake extra-as-string: export const m6 = (p: PurchaseConflict): string | undefined => p.assigned;
