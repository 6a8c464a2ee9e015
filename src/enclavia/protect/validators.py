"""Checksums and plausibility checks for identifiers. Pure functions, no I/O, no regexes of content."""

from __future__ import annotations

import ipaddress
from typing import Final

__all__ = ["date_valid", "iban_valid", "ip_valid", "luhn_valid", "npi_valid", "ssn_valid"]

# ISO 13616 IBAN lengths by country (SWIFT IBAN registry).
IBAN_LENGTHS: Final[dict[str, int]] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22,
    "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25,
    "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def luhn_valid(number: str) -> bool:
    """Luhn (ISO/IEC 7812-1) over the digits of ``number``; separators are ignored."""
    digits = _digits(number)
    if not digits:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_valid(number: str) -> bool:
    """12 to 19 digits, Luhn-valid, not all one digit."""
    digits = _digits(number)
    return 12 <= len(digits) <= 19 and len(set(digits)) > 1 and luhn_valid(digits)


def npi_valid(number: str) -> bool:
    """US National Provider Identifier: 10 digits starting 1 or 2, Luhn over the prefix 80840 + NPI."""
    digits = _digits(number)
    return len(digits) == 10 and digits[0] in "12" and luhn_valid("80840" + digits)


def iban_valid(text: str) -> bool:
    """ISO 13616: known country, that country's length, and mod 97 == 1 on the rearranged number."""
    iban = "".join(text.split()).upper()
    if len(iban) < 15 or not iban.isalnum() or not iban[:2].isalpha() or not iban[2:4].isdigit():
        return False
    if IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    rearranged = iban[4:] + iban[:4]
    as_digits = "".join(str(int(c, 36)) for c in rearranged)
    return int(as_digits) % 97 == 1


def ssn_valid(text: str) -> bool:
    """US SSN: area not 000, 666 or 900-999; group not 00; serial not 0000; not a known advertising number."""
    digits = _digits(text)
    if len(digits) != 9:
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in {"000", "666"} or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return digits not in {"078051120", "219099999", "123456789"}


def ip_valid(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def date_valid(text: str) -> bool:
    """A numeric date that can exist: / . or - between parts, day-month or month-day, 2- or 4-digit year."""
    head = text.split(maxsplit=1)[0].split("T", maxsplit=1)[0]
    parts = [p for p in head.replace("/", "-").replace(".", "-").split("-") if p]
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return False
    if len(parts[0]) == 4:
        year, a, b = parts[0], int(parts[1]), int(parts[2])
    else:
        a, b, year = int(parts[0]), int(parts[1]), parts[2]
    if len(year) == 4 and not 1850 <= int(year) <= 2150:
        return False
    return min(a, b) >= 1 and ((a <= 12 and b <= 31) or (b <= 12 and a <= 31))
