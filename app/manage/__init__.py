"""The Manage Seats page (SPEC §9): static files served by the service, calling its public API."""
