# ruff: noqa: E501  (regex tables read better unwrapped)
"""Pattern recognizers for clinical, financial and contact identifiers, as Presidio recognizers.

Each rule is a regular expression, an optional capture group (the span reported), a base score, an optional
checksum validator and optional context words. A rule with ``needs_context`` only fires when one of its
context words occurs within ``window`` characters before the match; otherwise context raises the score.
Spans are character offsets into the analysed text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from presidio_analyzer import EntityRecognizer, RecognizerResult

from enclavia.protect import validators as v

__all__ = ["RULES", "Rule", "RuleRecognizer", "build_recognizers"]


@dataclass(frozen=True)
class Rule:
    entity: str
    pattern: re.Pattern[str]
    score: float
    group: int = 0
    validator: Callable[[str], bool] | None = None
    context: tuple[str, ...] = ()
    needs_context: bool = False
    context_score: float = 0.85
    window: int = 48
    classify: Callable[[str], str | None] | None = field(default=None)


def _re(pattern: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(pattern, flags)


_MONTHS = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_WEEKDAYS = r"(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day"
# Street types that follow the name (English and Faker's suffixes) and that precede it (Romance, Slavic).
_SUFFIXES = (
    "Alley|Avenue|Ave|Bend|Boulevard|Blvd|Branch|Bridge|Brook|Burg|Bypass|Camp|Canyon|Cape|Causeway|Center|"
    "Circle|Cir|Cliff|Close|Club|Common|Corner|Course|Court|Ct|Cove|Creek|Crescent|Crest|Crossing|Crossroad|"
    "Curve|Dale|Dam|Divide|Drive|Dr|Estate|Expressway|Extension|Falls?|Ferry|Fields?|Flats?|Ford|Forest|"
    "Forge|Fork|Fort|Freeway|Gardens?|Gateway|Glen|Greens?|Grove|Harbor|Haven|Heights|Highway|Hwy|Hill|"
    "Hollow|Inlet|Island|Isle|Junction|Keys?|Knolls?|Lakes?|Landing|Lane|Ln|Light|Loaf|Locks?|Lodge|Loop|"
    "Mall|Manor|Meadows?|Mews|Mill|Mission|Motorway|Mount|Mountain|Neck|Orchard|Oval|Overpass|Park|"
    "Parkway|Pass|Passage|Path|Pike|Pines?|Place|Pl|Plains?|Plaza|Point|Port|Prairie|Radial|Ramp|Ranch|"
    "Rapids?|Rest|Ridge|River|Road|Rd|Route|Row|Run|Shoals?|Shores?|Skyway|Springs?|Spur|Squares?|Sq|"
    "Station|Stravenue|Stream|Streets?|St|Summit|Terrace|Throughway|Trace|Track|Trafficway|Trail|Tunnel|"
    "Turnpike|Underpass|Union|Valley|Viaduct|View|Village|Ville|Vista|Walk|Wall|Way|Wells?"
)
_PREFIXES = r"Rue|Rua|Via|Viale|Calle|Avenida|Av\.|Piazza|Largo|Travessa|Rambla|Plaza|ul\.|al\.|Ulica|Aleja"
# Compound street names (Nordic, Germanic, Baltic, Hungarian): the type is the word's ending.
_COMPOUND = (
    "vej|vænget|gade|gatan|gata|gatu|vegen|veien|vägen|väg|gränd|stien|stigen|torget|katu|tie|kuja|polku|"
    "kaari|rinne|tanhua|straße|strasse|str\\.|straat|weg|laan|plein|gasse|platz|allee|allé|ring|damm|"
    "braut|brekka|gata|stígur|vegur|tún|utca|út|u\\.|krantas|iela|tänav|tee|aukio|tori|puistikko|kapu"
)
# Word patterns are bounded (40 characters): an unbounded run makes a long unbroken token ("A-A-A-...")
# quadratic to scan, and detection accepts texts of 200,000 characters.
_CAP = r"[A-ZÀ-ÖØ-ÞĀ-ſ][\w'’.-]{0,40}"
_NUM = r"\d{1,5}[A-Za-z]?\.?"
# City, region, country and postcode lines after a street: newline- or comma-separated, short, no ':' or '@'.
_UNIT = r"(?:Apt\.?|Apartment|Suite|Ste\.?|Unit|Floor|Fl\.)[ \t]+#?\d{1,5}[A-Za-z]?"
# Each piece is a unit ("Apt. 12", whose dot ends no sentence) or a short line or comma part; one blank line may
# separate the pieces of a postal block.
_ADDRESS_SEP = r"(?:[ \t]*,[ \t]*|[ \t]*\n(?:[ \t>?]*\n)?[ \t>?]*)"
_ADDRESS_TAIL = rf"(?:{_ADDRESS_SEP}(?:{_UNIT}\b|(?!\+?\d[\d ().-]{{6,}})[^\s,:@/()<>][^\n,:@/<>]{{0,40}}?(?=[ \t]*(?:[,\n]|$|[.?!](?:\s|$)|[ ](?:in|for|after|last|and)[ ]))))"
_ADDRESS_CONTEXT = (
    "address",
    "located",
    "corner",
    "live",
    "lives",
    "moved",
    "deliver",
    "ship",
    "return",
    "meet",
    "street",
    "station",
    "stop",
    "billing",
    "mail",
    "send",
    "sent",
    "arrived",
    "drops",
    "it is",
    "office",
    "offices",
)

_STREET = (
    rf"(?:\d{{1,6}}[ \t]+){{0,2}}(?:"
    # 123 Main Street / Main Street 12 / Main St.
    rf"(?:{_NUM}[ \t]+)?(?:{_CAP}[ \t]+){{0,3}}{_CAP}[ \t]+(?:{_SUFFIXES})\b\.?(?:[ \t]+{_NUM}(?!\d))?"
    # Rue de la Paix 5, Via Roma 131, ul. Zamkowa 33
    rf"|(?:{_PREFIXES})[ \t]+(?:(?:d[aeiou]s?|de[ls]?|la|le|della|del)[ \t]+)?(?:{_CAP}[ \t]+){{0,3}}{_CAP}(?:[ \t]+{_NUM})?"
    # Østbygatan 14, Koskikatu 25, Rákóczi út 13.
    rf"|(?:{_CAP}[ \t]+){{0,2}}[\w'’-]{{0,40}}(?i:{_COMPOUND})[ \t]+{_NUM}"
    rf")"
)
_MILITARY = (
    r"(?:(?:PSC|Unit|CMR)[ \t]+\d{4},?[ \t]+Box[ \t]+\d{4}|(?:USS|USNS|USNV|USCGC)[ \t]+[A-Z][a-z]+)"
    r"[ \t]*\n?[ \t]*(?:APO|FPO|DPO)[ \t]+(?:AA|AE|AP)[ \t]+\d{5}"
)


_NOT_NAMES = frozenset(
    {"a", "an", "the", "not", "in", "at", "on", "from", "going", "sorry", "glad", "happy", "here", "so", "very",
     "looking", "interested", "writing", "calling", "trying", "unable", "afraid", "sure", "fine", "good", "also",
     "still", "just", "now", "currently", "married", "single", "unemployed", "retired", "new", "your", "my"}
)  # fmt: skip
_DEMONYMS = (
    "american|americans|british|english|scottish|welsh|irish|french|german|germans|italian|italians|spanish|"
    "portuguese|dutch|belgian|swiss|austrian|swedish|swedes|norwegian|norwegians|danish|danes|finnish|finns|"
    "icelandic|icelanders|polish|poles|czech|czechs|slovak|slovenian|croatian|serbian|bosnian|hungarian|"
    "romanian|bulgarian|greek|greeks|turkish|turks|russian|russians|ukrainian|belarusian|lithuanian|latvian|"
    "estonian|chechen|georgian|armenian|azerbaijani|kazakh|uzbek|chinese|japanese|korean|vietnamese|thai|"
    "cambodian|cambodians|laotian|burmese|filipino|filipinos|indonesian|malaysian|singaporean|indian|indians|"
    "pakistani|pakistanis|bangladeshi|nepali|sri lankan|afghan|afghans|iranian|iranians|iraqi|iraqis|syrian|"
    "syrians|lebanese|jordanian|israeli|israelis|palestinian|saudi|saudis|emirati|yemeni|omani|qatari|kuwaiti|"
    "egyptian|egyptians|moroccan|algerian|tunisian|libyan|sudanese|ethiopian|somali|kenyan|nigerian|ghanaian|"
    "senegalese|south african|zimbabwean|mexican|mexicans|canadian|canadians|brazilian|brazilians|argentine|"
    "argentinian|chilean|peruvian|colombian|venezuelan|ecuadorian|ecuadoreans|ecuadorians|bolivian|uruguayan|"
    "paraguayan|cuban|haitian|jamaican|belizean|belizian|guatemalan|honduran|salvadoran|nicaraguan|panamanian|"
    "australian|australians|new zealander|greenlandic|greenlanders|muslim|muslims|christian|christians|jewish|"
    "jews|hindu|hindus|buddhist|buddhists|sikh|sikhs|catholic|catholics|protestant|protestants|shia|shiite|"
    "shiites|shiis|sunni|sunnis|mormon|mormons|atheist|atheists|hispanic|latino|latina|latinos|arab|arabs|"
    "asian|asians|african|africans|european|europeans|caucasian|republican|republicans|democrat|democrats"
)


def _age(text: str) -> str | None:
    n = int(text)
    if n > 130:
        return None
    return "AGE_OVER_89" if n > 89 else "AGE"


# NNN-NN-NNNN is how SSNs are written; no numbering plan groups a phone number 3-2-4.
_SSN_SHAPE = re.compile(r"^\d{3}[- ]\d{2}[- ]\d{4}$")


def _ipv4(text: str) -> bool:
    return v.ip_valid(text) and not all(p == "0" for p in text.split("."))


RULES: Final[tuple[Rule, ...]] = (
    # --- contact --------------------------------------------------------------------------------
    Rule(
        "EMAIL_ADDRESS", _re(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"), 1.0
    ),
    Rule("URL", _re(r"\bhttps?://[^\s<>\"'()]+[^\s<>\"'().,;:!?]"), 0.96),
    Rule(
        "URL",
        _re(r"(?<![@\w.])www\.[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+(?:/[^\s<>\"']*[^\s<>\"'.,;:!?])?"),
        0.95,
    ),
    Rule("IP_ADDRESS", _re(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"), 0.9, validator=_ipv4),
    Rule(
        "IP_ADDRESS",
        _re(r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){2,7}(?::|[0-9A-Fa-f]{1,4})(?![\w:])|(?<![\w:])::1(?![\w:])"),
        0.85,
        validator=v.ip_valid,
    ),
    Rule(
        "PHONE_NUMBER",
        _re(
            r"(?<![\w+/.-])(?:\+\d{1,3}[ .-]?|1[ .-](?=\(?\d{3}\)?[ .-]?\d{3}[ .-]\d{4}))?(?:\(\d{1,4}\)[ .-]?)?(?:\(0\)[ ]?)?"
            r"\d{2,5}(?:[ .-]\d{2,5}){1,4}(?:[ ]?(?:x|ext\.?)[ ]?\d{1,5})?(?![\w/]|-\d|\.\d)"
        ),
        0.55,
        validator=lambda s: 7 <= sum(c.isdigit() for c in s.split("x")[0]) <= 15 and not _SSN_SHAPE.match(s),
        context=(
            "phone",
            "ph",
            "call",
            "tel",
            "mobile",
            "cell",
            "fax",
            "number",
            "reach",
            "answering",
            "contact",
        ),
        context_score=0.8,
    ),
    Rule(
        "PHONE_NUMBER",
        _re(r"(?<![\w+-])\+\d{7,14}\b|\(\d{2,4}\)[ ]?\d{3,4}[ -]?\d{3,4}\b"),
        0.7,
    ),
    Rule(
        "PHONE_NUMBER",
        _re(r"\b\d{7,12}\b"),
        0.3,
        context=("phone", "call", "tel", "mobile", "cell", "fax", "reach me", "text me"),
        needs_context=True,
        context_score=0.75,
    ),
    # --- financial ------------------------------------------------------------------------------
    Rule("CREDIT_CARD", _re(r"(?<![\d-])(?:\d[ -]?){11,18}\d(?![\d-])"), 0.9, validator=v.card_valid),
    Rule(
        "IBAN_CODE",
        _re(r"\b[A-Za-z]{2}\d{2}(?:[ ]?[A-Za-z0-9]{4}){2,7}(?:[ ]?[A-Za-z0-9]{1,3})?\b"),
        0.95,
        validator=v.iban_valid,
    ),
    # --- government and clinical identifiers ------------------------------------------------------
    Rule("US_SSN", _re(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])"), 0.85, validator=v.ssn_valid),
    Rule("US_SSN", _re(r"(?<![\d ])\d{3} \d{2} \d{4}(?![\d ])"), 0.6, validator=v.ssn_valid),
    Rule(
        "US_SSN",
        _re(r"\b\d{9}\b"),
        0.3,
        validator=v.ssn_valid,
        context=("ssn", "social security", "ss#", "ss #"),
        needs_context=True,
    ),
    Rule(
        "US_DRIVER_LICENSE",
        _re(
            r"(?i)\b(?:driver'?s?|driving)[ ]licen[cs]e(?:[ ](?:number|no\.?|#))?(?:[ ]is)?[:# ]*([A-Z0-9][A-Z0-9-]{4,18}[A-Z0-9])\b"
        ),
        0.85,
        group=1,
    ),
    Rule(
        "MRN",
        _re(
            r"(?i)\b(?:MRN|medical[ ]record(?:[ ](?:number|no\.?|#))?|patient[ ]id)[:# ]*(?:is[ ])?([A-Z]{0,3}-?\d{5,10})\b"
        ),
        0.9,
        group=1,
    ),
    Rule(
        "NPI",
        _re(r"(?<!\d)[12]\d{9}(?!\d)"),
        0.3,
        validator=v.npi_valid,
        context=("npi", "provider", "prescriber", "physician", "national provider"),
        needs_context=True,
        context_score=0.9,
    ),
    # --- dates and ages ----------------------------------------------------------------------------
    Rule(
        "DATE_TIME",
        _re(r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{1,2}:\d{2}(?::\d{2})?(?:Z|[+-]\d{2}:?\d{2})?)?\b"),
        0.9,
    ),
    Rule("DATE_TIME", _re(r"(?<![\d/.-])\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})(?![\d/.-])"), 0.8),
    Rule(
        "DATE_TIME",
        _re(
            rf"\b(?:{_MONTHS}\.?[ ]\d{{1,2}}(?:st|nd|rd|th)?,?(?:[ ]\d{{4}})?|\d{{1,2}}(?:st|nd|rd|th)?[ ](?:of[ ])?{_MONTHS}\.?(?:,?[ ]\d{{4}})?|{_MONTHS}[ ]\d{{4}})\b"
        ),
        0.85,
    ),
    Rule("DATE_TIME", _re(rf"\b{_WEEKDAYS}s?\b"), 0.6),
    Rule(
        "DATE_TIME",
        _re(r"\b(?:19|20)\d{2}\b"),
        0.4,
        context=(
            "born",
            "since",
            "year",
            "in",
            "from",
            "date",
            "graduated",
            "until",
            "of",
            "died",
            "established",
        ),
        needs_context=True,
        context_score=0.6,
        window=12,
    ),
    Rule(
        "AGE", _re(r"\b(\d{1,3})[- ]?(?:years?|yrs?)[- ]old\b", re.IGNORECASE), 0.85, group=1, classify=_age
    ),
    Rule(
        "AGE",
        _re(
            r"\b(?:aged?|age[ ]of|turn(?:ed|s|ing)?|is[ ]now)[ ](\d{1,3})\b(?![ ]?(?:%|percent|dollars|\$))",
            re.IGNORECASE,
        ),
        0.7,
        group=1,
        classify=_age,
    ),
    Rule("AGE", _re(r"\b(\d{1,3})[ ]?(?:y/o|yo|y\.o\.)(?!\w)", re.IGNORECASE), 0.8, group=1, classify=_age),
    # --- places --------------------------------------------------------------------------------
    Rule("STREET_ADDRESS", _re(rf"{_MILITARY}"), 0.9),
    Rule(
        "STREET_ADDRESS",
        _re(
            rf"(?:the[ ]corner[ ]of[ ])?{_STREET}(?:[ \t,]+{_UNIT})*(?:[ \t]+and[ \t]+{_STREET})?{_ADDRESS_TAIL}{{0,4}}"
        ),
        0.82,
        context=_ADDRESS_CONTEXT,
        context_score=0.88,
        window=80,
    ),
    Rule(
        "STREET_ADDRESS",
        _re(
            rf"(?:\d{{1,6}}[ \t]+)?(?:P\.?O\.?[ ]Box[ ]\d{{1,6}}|(?:{_CAP}[ \t]+){{0,2}}{_CAP}[ \t]+\d{{1,5}}\b\.?)(?:[ \t,]+{_UNIT})*{_ADDRESS_TAIL}{{0,4}}"
        ),
        0.5,
        context=_ADDRESS_CONTEXT,
        needs_context=True,
        context_score=0.82,
        window=40,
    ),
    Rule("STREET_ADDRESS", _re(rf"\b{_UNIT}\b{_ADDRESS_TAIL}{{0,3}}"), 0.82),
    # "Edeby 55" with no street type, followed by a unit: the shape of a postal block.
    Rule(
        "STREET_ADDRESS",
        _re(
            rf"(?:\d{{1,6}}[ \t]+)?(?:{_CAP}[ \t]+){{0,2}}{_CAP}[ \t]+\d{{1,5}}\b\.?(?=(?:[ \t]*,[ \t]*|[ \t]+|[ \t]*\n[ \t>?]*){_UNIT}\b){_ADDRESS_TAIL}{{0,5}}"
        ),
        0.82,
    ),
    Rule(
        "ZIP_CODE",
        _re(
            r"(?i)\b(?:zip(?:[ ]?code)?|postal[ ]code|post[ ]?code)[:# ]*(?:is[ ])?([A-Z0-9]{1,4}(?:[ -][A-Z0-9]{2,4})?|\d{3,5})\b"
        ),
        0.85,
        group=1,
    ),
    Rule("ZIP_CODE", _re(r"\b[A-Z]{2}[ ](\d{5}(?:-\d{4})?)\b"), 0.6, group=1),
    Rule(
        "LOCATION",
        _re(
            rf"\b(?:grew[ ]up[ ]in|(?:originally|coming)[ ]from|lives?[ ]in|living[ ]in|arrived[ ]at|moved[ ]to|moved(?:[ ]here)?[ ]from|born[ ]in|based[ ]in|trip[ ]to|city[ ]of|flew[ ]to|flying[ ]to|travel(?:l?ed|l?ing)?[ ]to|returned[ ]to|(?:University|College)[ ]of)[ ]({_CAP}(?:[ ]{_CAP}){{0,2}})"
        ),
        # Above the NER default: the phrase says place, whatever the small model guessed for the word.
        0.81,
        group=1,
    ),
    Rule("ORGANIZATION", _re(r"\b[A-Z][a-z]+(?:-[A-Z][a-z]+)?,[ ][A-Z][a-z]+[ ]and[ ][A-Z][a-z]+\b"), 0.9),
    Rule(
        "ORGANIZATION",
        _re(
            rf"\b(?:{_CAP}[ ]){{1,3}}(?:Inc|Corp|Corporation|LLC|Ltd|GmbH|AG|SA|Group|Company|Co|Holdings|Technologies|Bank|Hospital|Clinic|University)\b\.?"
        ),
        0.85,
    ),
    Rule("NRP", _re(rf"(?i)\b(?:{_DEMONYMS})\b"), 0.6),
    # --- people --------------------------------------------------------------------------------
    Rule(
        "PERSON",
        _re(
            r"(?i:\b(?:my[ ]name[ ]is|name[ ]is|name:|call[ ]me|maiden[ ]name[ ]is|signed,?)[ \t]+)([A-ZÀ-Þa-zß-ÿĀ-ſ][\w'’-]+(?:[ ][A-ZÀ-Þa-zĀ-ſ]\.?)?(?:[ ][A-ZÀ-Þa-zß-ÿĀ-ſ][\w'’-]+)?)"
        ),
        0.55,
        group=1,
        validator=lambda s: s.split()[0].lower() not in _NOT_NAMES,
    ),
    Rule("TITLE", _re(r"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sr|Sra|Herr|Frau|Mme|Mlle)\.?(?=[ ]+[A-ZÀ-Þ])"), 0.6),
    # Lower-case text: only the abbreviations with their dot ("miss" alone is a verb).
    Rule("TITLE", _re(r"\b(?:mr|mrs|ms|mx|dr|prof)\.(?=[ ]+[a-zß-ÿ])"), 0.6),
)


def _context_near(text: str, start: int, words: Sequence[str], window: int) -> bool:
    before = text[max(0, start - window) : start].lower()
    return any(re.search(rf"(?<!\w){re.escape(w)}(?!\w)", before) for w in words)


class RuleRecognizer(EntityRecognizer):  # type: ignore[misc]
    """One Presidio recognizer running a list of rules."""

    def __init__(self, rules: Sequence[Rule], name: str) -> None:
        self.rules = tuple(rules)
        entities = sorted({r.entity for r in rules} | _extra(rules))
        super().__init__(supported_entities=entities, name=name, supported_language="en")

    def load(self) -> None:
        return None

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        out: list[RecognizerResult] = []
        for rule in self.rules:
            for m in rule.pattern.finditer(text):
                start, end = m.span(rule.group)
                if start < 0 or end <= start:
                    continue
                value = text[start:end]
                if rule.validator is not None and not rule.validator(value):
                    continue
                entity = rule.entity
                if rule.classify is not None:
                    classified = rule.classify(value)
                    if classified is None:
                        continue
                    entity = classified
                if entities and entity not in entities:
                    continue
                score = rule.score
                if rule.context:
                    near = _context_near(text, m.start(), rule.context, rule.window)
                    if rule.needs_context and not near:
                        continue
                    if near:
                        score = max(score, rule.context_score)
                out.append(RecognizerResult(entity, start, end, score))
        return out


def _extra(rules: Sequence[Rule]) -> set[str]:
    return {"AGE_OVER_89"} if any(r.entity == "AGE" for r in rules) else set()


def build_recognizers() -> list[RuleRecognizer]:
    from enclavia.protect.clinical import CLINICAL_RULES

    return [RuleRecognizer(RULES, "enclavia-rules"), RuleRecognizer(CLINICAL_RULES, "enclavia-clinical")]
