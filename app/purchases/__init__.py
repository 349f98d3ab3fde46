"""Purchases: the two-phase seat purchase on top of collection (SPEC R6, §5, §6)."""
