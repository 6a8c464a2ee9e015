"""The detector's entity vocabulary. Classification manifests map these names to data classes."""

from __future__ import annotations

from typing import Final

ENTITY_TYPES: Final = frozenset(
    {
        "PERSON",
        "LOCATION",
        "STREET_ADDRESS",
        "ZIP_CODE",
        "ORGANIZATION",
        "NRP",
        "TITLE",
        "DATE_TIME",
        "AGE",
        "AGE_OVER_89",
        "PHONE_NUMBER",
        "EMAIL_ADDRESS",
        "URL",
        "IP_ADDRESS",
        "CREDIT_CARD",
        "IBAN_CODE",
        "US_SSN",
        "US_DRIVER_LICENSE",
        "MRN",
        "NPI",
        "ACCOUNT_NUMBER",
        "HEALTH_PLAN_ID",
        "MEDICAL_LICENSE",
        "DEVICE_ID",
        "VEHICLE_ID",
        "ID",
    }
)

# enclavia type -> the entity name Presidio uses for it (its predefined recognizers, and the AGE and ID labels
# of its transformers NER configuration). A type Presidio has no name for keeps its own (TITLE).
PRESIDIO_NAMES: Final[dict[str, str]] = {
    **{t: t for t in ENTITY_TYPES},
    "STREET_ADDRESS": "LOCATION",
    "ZIP_CODE": "LOCATION",
    "AGE_OVER_89": "AGE",
    "MRN": "ID",
    "NPI": "ID",
    "ACCOUNT_NUMBER": "ID",
    "HEALTH_PLAN_ID": "ID",
    "DEVICE_ID": "ID",
    "VEHICLE_ID": "ID",
}
