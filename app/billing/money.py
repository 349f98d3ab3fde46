"""Amounts in words for people: minor units shown in the currency's major unit (SPEC §3, §10).

Money is an integer of minor units everywhere else; only documents (the invoice PDF, the CSV's
formatted column) show it this way. Pure: no I/O.
"""

from __future__ import annotations

# ISO 4217 minor-unit exponents that are not 2. A currency not named here has 2 (USD, EUR,
# GBP, ...): the common case, and what a price list in cents assumes.
_EXPONENTS = {
    "BIF": 0,
    "CLP": 0,
    "DJF": 0,
    "GNF": 0,
    "ISK": 0,
    "JPY": 0,
    "KMF": 0,
    "KRW": 0,
    "PYG": 0,
    "RWF": 0,
    "UGX": 0,
    "UYI": 0,
    "VND": 0,
    "VUV": 0,
    "XAF": 0,
    "XOF": 0,
    "XPF": 0,
    "BHD": 3,
    "IQD": 3,
    "JOD": 3,
    "KWD": 3,
    "LYD": 3,
    "OMR": 3,
    "TND": 3,
    "CLF": 4,
    "UYW": 4,
}


def exponent(currency: str) -> int:
    """How many digits of the currency's minor units make one major unit."""
    return _EXPONENTS.get(currency.upper(), 2)


def major_units(amount: int, currency: str) -> str:
    """``amount`` minor units as a plain decimal of major units: 123456 USD -> "1234.56"."""
    digits = exponent(currency)
    sign = "-" if amount < 0 else ""
    whole, part = divmod(abs(amount), 10**digits)
    return f"{sign}{whole}.{part:0{digits}d}" if digits else f"{sign}{whole}"


def format_amount(amount: int, currency: str) -> str:
    """``amount`` minor units for a reader: 123456 USD -> "USD 1,234.56", 5000 JPY -> "JPY 5,000".

    The code, not a symbol: "$" names a dozen currencies. Integers all the way (no float).
    """
    digits = exponent(currency)
    sign = "-" if amount < 0 else ""
    whole, part = divmod(abs(amount), 10**digits)
    shown = f"{whole:,}" + (f".{part:0{digits}d}" if digits else "")
    return f"{currency.upper()} {sign}{shown}"
