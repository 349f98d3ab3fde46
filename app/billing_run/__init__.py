"""The billing run: small jobs over claimed rows, run by ``seats billing run`` (SPEC §7)."""
