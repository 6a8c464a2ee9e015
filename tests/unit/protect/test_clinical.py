"""Clinical-note recognizers (enclavia.protect.clinical) and their interplay in the detector.

Values here are written for these tests; none comes from the rules or the generator's pools.
"""

from __future__ import annotations

import pytest

from enclavia.protect import validators as v
from enclavia.protect.clinical import after_code_system, all_never_names
from enclavia.protect.detect import Detector, Span, resolve_overlaps


def _types(detector: Detector, text: str) -> dict[str, str]:
    return {text[s.start : s.end]: s.type for s in detector.detect(text)}


def _covered(detector: Detector, text: str, value: str) -> bool:
    """Every non-space character of ``value`` (its first occurrence) lies inside some detected span."""
    start = text.index(value)
    spans = detector.detect(text)
    return all(
        text[i].isspace() or any(s.start <= i < s.end for s in spans)
        for i in range(start, start + len(value))
    )


@pytest.mark.parametrize(
    ("text", "value", "etype"),
    [
        ("MRN: 00482913\n", "00482913", "MRN"),
        ("Med Rec No. A0048291 on file", "A0048291", "MRN"),
        ("Chart # PX441937\n", "PX441937", "MRN"),
        ("MR#MQ551208\n", "MQ551208", "MRN"),
        ("Acct #: 55012399\n", "55012399", "ACCOUNT_NUMBER"),
        ("Encounter # ENC-77120034 today", "ENC-77120034", "ACCOUNT_NUMBER"),
        ("Member ID: XJH448812399\n", "XJH448812399", "HEALTH_PLAN_ID"),
        ("Health Plan ID W2234 88100\n", "W2234 88100", "HEALTH_PLAN_ID"),
        ("Medicaid ID 31874412A\n", "31874412A", "HEALTH_PLAN_ID"),
        ("DEA # AB1234563\n", "AB1234563", "MEDICAL_LICENSE"),
        ("State License No. MD-448812\n", "MD-448812", "MEDICAL_LICENSE"),
        ("driver's license number D1234-56789-01234\n", "D1234-56789-01234", "US_DRIVER_LICENSE"),
        ("NPI: 1234567893\n", "1234567893", "NPI"),
        ("Professional ID: K40917\n", "K40917", "ID"),
        ("Accession #: S24-18832\n", "S24-18832", "ID"),
        ("Pacemaker serial no. PJN123456H checked", "PJN123456H", "DEVICE_ID"),
        ("UDI (01)00643169007222(21)AB1234\n", "(01)00643169007222(21)AB1234", "DEVICE_ID"),
        ("VIN 1HGCM82633A004352 in lot", "1HGCM82633A004352", "VEHICLE_ID"),
        ("licence plate TRX-4471 noted", "TRX-4471", "VEHICLE_ID"),
    ],
)
def test_labelled_identifiers(detector: Detector, text: str, value: str, etype: str) -> None:
    assert _types(detector, text).get(value) == etype


@pytest.mark.parametrize(
    "text",
    [
        "CPT code 99214 billed",  # code systems are not identifiers
        "NDC 0093-7214-01 dispensed",
        "ICD-10: E11.9 noted",
        "Room No. 412 ready",  # too few digits for a bare label
        "member of the family visited",
        "See order # 12 below",
    ],
)
def test_labelled_identifier_negatives(detector: Detector, text: str) -> None:
    ids = {
        "MRN",
        "ACCOUNT_NUMBER",
        "HEALTH_PLAN_ID",
        "MEDICAL_LICENSE",
        "NPI",
        "ID",
        "DEVICE_ID",
        "VEHICLE_ID",
    }
    found = _types(detector, text)
    assert not ids & set(found.values()), found
    assert "PHONE_NUMBER" not in found.values() and "DATE_TIME" not in found.values(), found


def test_npi_label_with_bad_checksum_is_an_id_not_an_npi(detector: Detector) -> None:
    assert _types(detector, "NPI 1234567890\n").get("1234567890") == "ID"


@pytest.mark.parametrize(
    "text", ["SSN 123-45-6789", "SSN: 078-05-1120", "Social Security No. 212 44 9031", "SS#219551234"]
)
def test_labelled_ssn_is_an_ssn_not_a_phone(detector: Detector, text: str) -> None:
    found = detector.detect(text)
    assert [s.type for s in found] == ["US_SSN"], found
    assert text[found[0].start : found[0].end].replace(" ", "").replace("-", "").isdigit()


def test_ssn_shape_is_never_a_phone(detector: Detector) -> None:
    # Unlabelled and outside the issuance rules: not claimed as an SSN, and not a phone either.
    assert "PHONE_NUMBER" not in _types(detector, "ref 666-12-3456 here").values()
    assert _types(detector, "call 787-555-0142 now").get("787-555-0142") == "PHONE_NUMBER"
    assert _types(detector, "Fax 1-670-900-7528\n").get("1-670-900-7528") == "PHONE_NUMBER"
    assert _types(detector, "Home phone (939)249-1926\n").get("(939)249-1926") == "PHONE_NUMBER"


@pytest.mark.parametrize(
    "address",
    [
        "Calle Estrella #1207, San Germán, PR 00683",
        "HC 03 Box 55120\nUtuado, PR 00641",
        "Urb. Los Almendros, Calle Ceiba 14, Bayamón, PR 00961",
        "190 Chalan Santo Papa, Suite 205\nHagåtña, GU 96910",
        "PO Box 306, Kingshill, VI 00851",
        "8 Estate Thomas, Charlotte Amalie, VI 00802",
        "PO Box 997123, Pago Pago, AS 96799",
        "Caller Box 10001, Saipan, MP 96950",
        "4410 NW Quarry Ridge Ct Apt 3B, Tulsa, OK 74127-2201",
        "12 West Juniper Terrace\nYONKERS, NY 10701",
    ],
)
def test_us_and_territory_addresses(detector: Detector, address: str) -> None:
    text = f"Address on file: {address}\nNext of kin notified."
    assert _covered(detector, text, address), [(text[s.start : s.end], s.type) for s in detector.detect(text)]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("seen 14-Mar-2024 in clinic", "14-Mar-2024"),
        ("DOB: 9JUL1985\n", "9JUL1985"),
        ("Collected 03.14.2024 08:21\n", "03.14.2024 08:21"),
        ("admitted JUNE 25, 2022 for", "JUNE 25, 2022"),
        ("Discharge Date 2/20\n", "2/20"),
        ("Resulted: 20220719\n", "20220719"),
        ("follow-up on 2023-10-10 at 06:00.", "2023-10-10 at 06:00"),
        ("arrived 6/25 18:28 by EMS", "6/25 18:28"),
        ("on March 3rd, 2021 she", "March 3rd, 2021"),
    ],
)
def test_dates(detector: Detector, text: str, value: str) -> None:
    assert _types(detector, text).get(value) == "DATE_TIME"


@pytest.mark.parametrize(
    "text",
    [
        "Pain 6/10 at rest",
        "BP 142/88 sitting",
        "NDC 0093-7214-01",
        "strength 5/5 in all limbs",
        "patient may 2 puffs",
    ],
)
def test_date_negatives(detector: Detector, text: str) -> None:
    assert "DATE_TIME" not in _types(detector, text).values()


def test_date_validator() -> None:
    assert v.date_valid("03/14/2024") and v.date_valid("14.03.2024") and v.date_valid("2024-03-14 10:00")
    assert not v.date_valid("13/13/2024") and not v.date_valid("03/14/3024") and not v.date_valid("0/5/22")


@pytest.mark.parametrize(
    ("text", "value", "etype"),
    [
        ("A 67yo F with COPD", "67", "AGE"),
        ("Age/Sex: 38 F\n", "38", "AGE"),
        ("HPI: 94-yr-old female", "94", "AGE_OVER_89"),
        ("she is 24 years of age", "24", "AGE"),
        ("Pt is a 71 y.o. male", "71", "AGE"),
        ("COURSE: 98M admitted", "98", "AGE_OVER_89"),
        ("aged 104, male", "104", "AGE_OVER_89"),
    ],
)
def test_ages(detector: Detector, text: str, value: str, etype: str) -> None:
    assert _types(detector, text).get(value) == etype


def test_age_negatives(detector: Detector) -> None:
    for text in ("Temp 98F at noon", "Wt 84 kg", "metformin 500 mg"):
        assert not {"AGE", "AGE_OVER_89"} & set(_types(detector, text).values()), text


@pytest.mark.parametrize(
    "org",
    [
        "Riverbend Pediatrics, PLLC",
        "SAN LUCAS REGIONAL MEDICAL CENTER",
        "Hospital San Cristóbal",
        "Lyndon B. Johnson Cardiology Group",
        "Northfield Clinical Laboratories",
    ],
)
def test_organisations(detector: Detector, org: str) -> None:
    text = f"Transferred to {org} yesterday."
    assert _types(detector, text).get(org) == "ORGANIZATION"


def test_organisation_after_a_label(detector: Detector) -> None:
    assert _types(detector, "Insurer: Caribe Salud\n").get("Caribe Salud") == "ORGANIZATION"


@pytest.mark.parametrize(
    "text",
    [
        "EMERGENCY DEPARTMENT NOTE\n",
        "Assessment and Plan:\n",
        "Patient: \nEmail: \nLaboratory Results\nResults:\n",
        "DISCHARGE MEDICATIONS:\nHospital Course:\n",
        "Labs: K 4.1, Cr 1.32, Hgb 12.9 g/dL. Wt 84.2 kg.",
        "Dear Dr. ,\n",
    ],
)
def test_section_headers_and_labels_are_not_names(detector: Detector, text: str) -> None:
    found = {text[s.start : s.end]: s.type for s in detector.detect(text)}
    named = {"PERSON", "ORGANIZATION", "LOCATION", "STREET_ADDRESS", "NRP"}
    assert not named & set(found.values()), found


def test_never_names_vocabulary() -> None:
    assert all_never_names("Patient") and all_never_names("Laboratory Results") and all_never_names("K 4.1")
    assert not all_never_names("Rosa Okonkwo") and not all_never_names("Patient Okonkwo")
    assert after_code_system("NDC 0093-7214-01", 4) and not after_code_system("MRN 00482913", 4)


def test_labelled_names_in_every_order_and_case(detector: Detector) -> None:
    text = (
        "PATIENT: OKAFOR-LINDQVIST, SEVERINE\nAttending: Tanabe, Hoku M, MD\n"
        "Ms. Okafor-Lindqvist reports dizziness. Seen by hospitalist Wren Adebayo-Cole.\n"
        "Daughter Ilse Marchetti (cell) will drive. Verified by Quilla Ayerbe, RN"
    )
    for name in ("OKAFOR-LINDQVIST, SEVERINE", "Tanabe, Hoku M", "Wren Adebayo-Cole", "Ilse Marchetti"):
        assert _covered(detector, text, name), name
    assert _covered(detector, text, "Quilla Ayerbe")


def test_a_name_found_once_is_found_everywhere(detector: Detector) -> None:
    # The header gives the name in capitals; the narrative uses it in title case with no cue around it.
    text = (
        "Patient: ZELIG, TAMSIN\nDOB: 02/11/1950\n\nZelig tolerated the procedure. Tamsin asked about diet."
    )
    spans = detector.detect(text)
    for word in ("Zelig", "Tamsin"):
        start = text.index(word, text.index("\n\n"))
        assert any(s.type == "PERSON" and s.start <= start < s.end for s in spans), word


def test_containing_span_of_same_type_takes_the_core_score() -> None:
    core = Span(10, 20, "STREET_ADDRESS", 0.9)
    block = Span(10, 40, "STREET_ADDRESS", 0.82)
    other = Span(15, 18, "PERSON", 0.85)
    assert resolve_overlaps([core, block, other]) == [Span(10, 40, "STREET_ADDRESS", 0.9)]
    # A higher-scoring span of another type inside the block still wins over both.
    plan = Span(30, 38, "HEALTH_PLAN_ID", 0.92)
    assert resolve_overlaps([core, block, plan]) == [core, plan]


@pytest.mark.parametrize(
    "text",
    [
        "History of Addison disease and a Swan-Ganz catheter.",
        "Kernig sign negative; Babinski reflex absent.",
        "Ativan was held overnight; continue Norvasc 5 mg daily.",
        "Allergic to Bactrim.",
    ],
)
def test_eponyms_and_drug_names_are_not_names(detector: Detector, text: str) -> None:
    named = {"PERSON", "ORGANIZATION", "LOCATION", "NRP"}
    found = {text[s.start : s.end]: s.type for s in detector.detect(text)}
    assert not named & set(found.values()), found


def test_subject_of_a_reporting_verb_and_per_are_names(detector: Detector) -> None:
    text = "Vitals stable. Oyelowo agrees with plan. Per Ingeborg, the dressing was changed."
    assert _covered(detector, text, "Oyelowo") and _covered(detector, text, "Ingeborg")


def test_a_month_day_alone_on_its_line_is_a_date(detector: Detector) -> None:
    text = "Fax: 555-0100\n\n11/23\n\nDear Dr. Quist,"
    assert _types(detector, text).get("11/23") == "DATE_TIME"


def test_a_label_does_not_reach_across_a_line_without_a_colon(detector: Detector) -> None:
    # "... Group" ends a practice's name; the next line is its street, not a group number.
    text = "Tamarind Cardiology Group\n4410 Quarry Ridge Ct\nTulsa, OK 74127\n"
    found = _types(detector, text)
    assert "HEALTH_PLAN_ID" not in found.values(), found
    assert _covered(detector, text, "4410 Quarry Ridge Ct\nTulsa, OK 74127")


def test_an_address_block_does_not_swallow_a_phone_line(detector: Detector) -> None:
    text = "12 Juniper Way\nYonkers NY 10701\nPH - 1-914-555-0188\nFax 914-555-0199\n\nJan 22, 2021\n"
    found = _types(detector, text)
    assert found.get("Jan 22, 2021") == "DATE_TIME", found
    assert found.get("1-914-555-0188") == "PHONE_NUMBER", found


def test_only_the_ner_pipeline_runs(detector: Detector) -> None:
    nlp = detector._engine.nlp_engine.nlp["en"]
    assert nlp.pipe_names == ["tok2vec", "ner"]
    # Names still come from the model where no rule sees them.
    text = "I met John Smith in Boston."
    assert {text[s.start : s.end]: s.type for s in detector.detect(text)} == {
        "John Smith": "PERSON",
        "Boston": "LOCATION",
    }
