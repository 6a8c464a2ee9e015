"""Each recognizer on positives and negatives (checksums, context, boundaries)."""

from __future__ import annotations

import itertools

import pytest

from enclavia.protect import validators as v
from enclavia.protect.detect import Detector


def _types(detector: Detector, text: str) -> dict[str, str]:
    return {text[s.start : s.end]: s.type for s in detector.detect(text)}


def test_validators() -> None:
    assert v.luhn_valid("4111 1111 1111 1111") and not v.luhn_valid("4111 1111 1111 1112")
    assert v.card_valid("4111-1111-1111-1111") and not v.card_valid("0000 0000 0000 0000")
    assert v.npi_valid("1234567893") and not v.npi_valid("1234567890") and not v.npi_valid("3234567893")
    assert v.iban_valid("GB82 WEST 1234 5698 7654 32") and not v.iban_valid("GB82 WEST 1234 5698 7654 33")
    assert not v.iban_valid("XX82WEST12345698765432")  # unknown country
    assert v.ssn_valid("123-45-6788") and not v.ssn_valid("000-12-3456") and not v.ssn_valid("666-12-3456")
    assert (
        not v.ssn_valid("912-12-3456") and not v.ssn_valid("123-00-4567") and not v.ssn_valid("123-45-0000")
    )


@pytest.mark.parametrize(
    ("text", "value", "etype"),
    [
        ("Patient MRN: 00123456 admitted.", "00123456", "MRN"),
        ("medical record number A1234567 on file", "A1234567", "MRN"),
        ("Referring NPI 1234567893 signed.", "1234567893", "NPI"),
        ("Wire to IBAN GB82 WEST 1234 5698 7654 32 today", "GB82 WEST 1234 5698 7654 32", "IBAN_CODE"),
        ("pay with 4111 1111 1111 1111 please", "4111 1111 1111 1111", "CREDIT_CARD"),
        ("her SSN is 123-45-6788.", "123-45-6788", "US_SSN"),
        ("seen on 2021-03-04 10:00", "2021-03-04 10:00", "DATE_TIME"),
        ("follow-up 3/14/2022 at noon", "3/14/2022", "DATE_TIME"),
        ("The patient is a 93 year old woman", "93", "AGE_OVER_89"),
        ("The patient is a 45-year-old man", "45", "AGE"),
        ("my zip code is 02139", "02139", "ZIP_CODE"),
        ("Write to jane.roe@example.org now", "jane.roe@example.org", "EMAIL_ADDRESS"),
        ("from 10.1.2.3 yesterday", "10.1.2.3", "IP_ADDRESS"),
        ("call me at +1-617-555-0123", "+1-617-555-0123", "PHONE_NUMBER"),
    ],
)
def test_positives(detector: Detector, text: str, value: str, etype: str) -> None:
    found = _types(detector, text)
    assert found.get(value) == etype, found


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Order 4111 1111 1111 1112 shipped", "4111 1111 1111 1112"),  # Luhn fails
        ("IBAN GB82 WEST 1234 5698 7654 33", "GB82 WEST 1234 5698 7654 33"),  # mod 97 fails
        ("number 1234567893 in the catalogue", "1234567893"),  # NPI checksum ok but no context
        ("Provider NPI 1234567890", "1234567890"),  # context but checksum fails
        ("code 000-12-3456 is not an SSN", "000-12-3456"),
        ("The patient is a 45-year-old man", "45-year-old"),  # only the number is the span
        ("We moved 300 boxes", "300"),
        ("ratio 1.2.3.400 is not an address", "1.2.3.400"),
    ],
)
def test_negatives(detector: Detector, text: str, value: str) -> None:
    found = _types(detector, text)
    assert value not in found or found[value] not in {
        "CREDIT_CARD",
        "IBAN_CODE",
        "NPI",
        "US_SSN",
        "AGE",
        "IP_ADDRESS",
    }


def test_offsets_are_characters_not_bytes(detector: Detector) -> None:
    text = "Ünïcødé prefix — card 4111 1111 1111 1111"
    spans = [s for s in detector.detect(text) if s.type == "CREDIT_CARD"]
    assert spans and text[spans[0].start : spans[0].end] == "4111 1111 1111 1111"


def test_spans_do_not_overlap(detector: Detector) -> None:
    text = "John Smith, 14 Crown Street, LONDON, card 4111111111111111, SSN 123-45-6788, born 2/8/1935."
    spans = detector.detect(text)
    for a, b in itertools.pairwise(spans):
        assert a.end <= b.start
