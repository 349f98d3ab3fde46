"""Events out: signed webhooks to the platform's services (SPEC §8, Standard Webhooks)."""
