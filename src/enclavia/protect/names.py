"""Person-name refinements on top of NER and the pattern rules.

The small NER model misses names and often tags them as organisations. These steps use generic evidence,
not word lists of names:

- honorifics ("Ms. Quinzia", "Dr Wells"), kinship and role nouns ("my kid Lukas", "grandmother was called
  X"), greetings and speaker labels at line start ("Halldór: What a ...") introduce a name;
- a span shaped like "Given X Family" (a single-letter middle initial) is a person, whatever NER said;
- within one text, a surface found as a PERSON is a PERSON wherever else it (or its first or last word)
  occurs, and spans of another type with that same surface are relabelled;
- in a coordinated list of single capitalised words ("A, B, C and D"), one PERSON makes them all persons.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from typing import Final

from enclavia.protect.clinical import NEVER_NAMES as _NEVER_NAMES

__all__ = ["PERSON_CONTEXT_SCORE", "refine_names"]

# Above the NER default (0.8), so these override an ORGANIZATION guess on the same words.
PERSON_CONTEXT_SCORE: Final = 0.81
_NER_SCORE: Final = 0.8  # the model's spans; rule spans score above it

_U = "A-ZÀ-ÖØ-ÞĀ-ſ"
_L = "a-zß-öø-ÿĀ-ſ"
_CAPW = rf"[{_U}](?:['’][{_U}])?[{_L}'’]+(?:[{_U}][{_L}]+)?(?:-[{_U}{_L}][{_L}'’]+)?"
_INITIAL = rf"[{_U}]\.?"
# Title case or capitals, with particles inside ("O'Brien", "MacLeod", "Al-Sayed", "Ji-woo", "ORTIZ").
_ANYW = rf"(?:[{_U}][{_L}'’]*[{_U}]?[{_L}'’]+|[{_U}]['’]?[{_U}]+)(?:-[{_U}{_L}][{_U}{_L}'’]+)?"
# "Family, Given [M]" or "Given [M.] Family [Family]", one line, no run-on into the next field.
_ANY_NAME = (
    rf"(?:{_ANYW}(?:[ ]{_ANYW})?,[ ]{_ANYW}(?:[ ]{_ANYW})?(?:[ ]{_INITIAL}(?![{_L}]))?"
    rf"|{_ANYW}(?:[ ](?:{_INITIAL}[ ])?{_ANYW}){{0,3}})"
)
# Field labels that introduce a person (patient, clinicians, contacts), then ":" or "-".
_NAME_LABEL = re.compile(
    r"(?i:\b(?:patient(?:[ ]name)?|pt(?:[ ]name)?|name|attending(?:[ ](?:physician|md|provider))?|"
    r"discharging[ ](?:physician|provider)|"
    r"(?:ordering|referring|primary|treating|consulting)[ ](?:provider|physician|md|doctor)|"
    r"provider|physician|pcp|surgeon|nurse|rn|resident|verified[ ]by|reviewed[ ]by|signed[ ]by|"
    r"electronically[ ]signed(?:[ ]by)?|dictated[ ]by|emergency[ ]contact|contact|next[ ]of[ ]kin|nok|"
    r"guardian|"
    r"parent|mother|father|spouse|caregiver|interpreter|witness|cc)[ \t]*(?::|-(?=[ \t]))[ \t]*|"
    r"\b(?:verified|reviewed|signed|dictated|transcribed|approved|performed|seen|examined|read)[ ]by:?[ \t]+)"
    rf"({_ANY_NAME})(?![{_L}])"
)
# Relatives, professions and "Pt" directly before a Title-case name: "daughter Noor Okonkwo", "nurse Ji-woo".
_NAME_AFTER_NOUN = re.compile(
    r"(?:\b(?i:pt|patient|daughter|son|wife|husband|mother|father|sister|brother|neighbou?r|friend|partner|"
    r"spouse|caregiver|guardian|grand(?:son|daughter|mother|father)|niece|nephew|aunt|uncle|cousin|"
    r"nurse|RN|NP|physician|doctor|surgeon|therapist|pharmacist|hospitalist|resident|intern|fellow|attending|"
    r"manager|worker|practitioner|assistant|technician|aide|chaplain|midwife|dietitian|counselor|"
    r"[a-z]+ologist|[a-z]+iatrist|[a-z]+ician|family|contact|per|spoke[ ]with|spoken[ ]to|"
    r"talked[ ](?:with|to)|met[ ]with|accompanied[ ]by|visited[ ]by)[ ]*[(:]?[ ]*)"
    r"(?!(?:Mr|Mrs|Ms|Mx|Dr|Prof)\b)"
    rf"({_CAPW}(?:[ ](?:{_INITIAL}[ ])?{_CAPW}){{0,2}})(?=[ ]?[,.;:)(]|[ ][a-z]|[ ]*$|[ ]*\n)"
)
# The subject of a clinical reporting verb at the start of a sentence: "Rahul agrees with plan."
_NAME_SUBJECT = re.compile(
    rf"(?:^|(?<=[.;!?][ ])|(?<=\n))({_CAPW}(?:[ ]{_CAPW})?)[ ]"
    r"(?=(?:agrees|agreed|states|stated|reports|reported|denies|denied|endorses|endorsed|understands|verbali[sz]es|tolerated|tolerates|declines|declined|"
    r"consents|consented|complains|presents|ambulates|ambulated|verbalized|voices)\b)"
)
# A name before a credential: "Kalani L. Price, MD", "Bogdan King, RN".
_NAME_CREDENTIAL = re.compile(
    rf"(?<![\w'’-])({_ANY_NAME}),?[ ](?:MD|DO|RN|NP|PA-C|PA|PhD|PharmD|DDS|DMD|LPN|LVN|CNA|MSW|LCSW|FNP|"
    r"FNP-C|DNP|APRN|CRNA|MBBS|FACP|FACS|MPH|BSN|MSN)\b"
)
_NAME = rf"{_CAPW}(?:[ ](?:{_INITIAL}[ ])?{_CAPW}){{0,2}}"

_HONORIFIC = re.compile(
    rf"(?<!\d)(?<!\d[ ])\b(?i:mr|mrs|ms|miss|mx|dr|prof|sr|sra|herr|frau|mme|mlle)\.?[ ]+({_NAME})"
)
_ROLE = re.compile(
    r"(?i:\b(?:named|called|calls[ ]me|call[ ]me|dear|hi|hello|hey|thanks|"
    r"(?:my|our|his|her|their|your)[ ](?:kid|child|son|daughter|wife|husband|partner|brother|sister|mother|"
    r"father|mom|mum|dad|grandfather|grandmother|grandson|granddaughter|uncle|aunt|cousin|nephew|niece|friend|"
    r"colleague|boss|manager|neighbou?r|doctor|lawyer|tenant|landlord|guardian))[ ,]+)"
    rf"({_NAME})"
)
# Speech verbs, "last name? X", "X's daughter", credits ("Directed by: X").
_SPEECH = re.compile(
    r"(?i:\b(?:said|says|asked|asks|told|tells|replied|shouted[ ]at|yelled[ ]at|whispered[ ]to|"
    r"(?:last|first|family|given|middle|maiden|full|sur)[ ]?name(?:[ ]is|[ ]was)?[?:]?|"
    r"(?:directed|written|produced|composed|narrated|performed|illustrated|edited)[ ]by:?)[ \t]+)"
    rf"({_NAME})"
)
_GENITIVE = re.compile(
    rf"\b({_NAME})['’]s[ ](?i:kid|child|children|son|daughter|wife|husband|partner|brother|sister|mother|"
    r"father|mom|dad|family|friend|boss)\b"
)
# A line of its own holding only "Given [X] Family": the name line of a letterhead, a signature or an address.
# Job titles: the head noun carries an agent suffix or is a common occupation word.
_JOB_HEAD_WORD = (
    r"(?i:[\w'’-]{0,40}(?:er|or|ist|ian|ant|ent|eon|ife|man|woman|person|ess|ic|yst|ive|grapher)|nurse|clerk|chef|"
    r"cook|guard|pilot|judge|secretary|janitor|maid|nanny|agent|coach|aide|ceo|cfo|cto)"
)
_JOB_HEAD = re.compile(rf"{_JOB_HEAD_WORD}$")
# Up to five modifiers, then the head: the shortest such phrase that ends at punctuation.
_JOB = (
    r"(?:(?!(?i:the|a|an|is|are|was|were|of|to|in|on|for|with|by|that|which)\b)"
    r"[A-Za-zÀ-ÿ][\w'’-]*,?[ ](?:and[ ])?)"
    rf"{{0,5}}?{_JOB_HEAD_WORD}"
)
_AS_JOB = re.compile(
    r"(?i:\b(?:work(?:ed|s|ing)?|employed|hired|job|served|started)\b[^.\n]{0,60}?\bas[ ](?:an?[ ]|the[ ])?)"
    rf"({_JOB})(?=[,.;:!?\n]|$)"
)
# Employment phrases name an organisation.
_EMPLOYER = re.compile(
    r"(?i:\b(?:work(?:s|ed|ing)?[ ](?:for|at)|employed[ ](?:by|at)|joined|\w+[ ]years?[ ]at|"
    r"(?:ceo|cto|cfo|founder|president|employee|head)[ ]of)[ ])"
    rf"({_CAPW}(?:[ ](?:&[ ])?{_CAPW}){{0,3}})"
)
_APPOSITIVE_JOB = re.compile(rf"[{_L}], the ({_JOB}),")
_LINE = re.compile(r"(?m)^[ \t>?]*([^\n]*?)[ \t]*$")
_BLOCK_START = re.compile(r"(?:\A|\n)[ \t>?]*(?:\n[ \t>?]*)?\Z")
_NAME_LINE = re.compile(rf"(?m)^[ \t>?]*({_CAPW}[ ](?:{_INITIAL}[ ])?{_CAPW}(?:[ ]{_CAPW})?)[ \t]*$")
_SPEAKER = re.compile(rf"(?m)^[ \t>]*({_CAPW}(?:[ ]{_CAPW})?)[ \t]*:(?=[ \t]*[\"“]?[A-Za-z])")
# Line-start labels that are not speakers.
_LABELS = frozenset(
    {"phone", "e-mail", "email", "website", "address", "note", "notes", "subject", "re", "from", "to", "cc",
     "date", "time", "user", "bot", "agent", "customer", "question", "answer", "name", "title", "fax",
     "mobile", "tel", "personal info", "info", "q", "a", "ps", "update", "warning", "error", "summary",
     "description",
     "reason", "status", "location", "company", "position", "education", "experience", "skills", "objective",
     "directed by", "written by", "starring", "genre", "rating", "dear", "hi", "hello", "billing address",
     "shipping address", "sent", "reply", "important", "example", "translation", "source", "url"}
)  # fmt: skip
_MIDDLE_INITIAL = re.compile(rf"^{_CAPW}[ ]{_INITIAL}[ ]{_CAPW}$")
_TWO_WORDS = re.compile(rf"^{_CAPW}[ ](?:{_INITIAL}[ ])?{_CAPW}$")
# Words that make a capitalised pair an organisation, a publication or a place rather than a person.
_ORG_WORD_TABLE: Final = (
    "inc corp corporation co company llc ltd limited gmbh ag sa plc group holdings technologies "
    "technology tech systems software solutions services partners consulting capital bank financial "
    "insurance labs media networks analytics health healthcare hospital clinic university college "
    "school institute foundation trust association society club orchestra band records weekly daily "
    "times news post journal magazine review press radio tv agency force army navy police council "
    "committee department ministry office court party church airlines air motors energy power "
    "pharma foods industries international global ventures entertainment studios pictures games "
    "sports united city county state street avenue road square park river lake mountain island "
    "north south east west northern southern eastern western central new saint st san santa fort "
    "port bay beach town village valley hills heights springs falls costa puerto el hong saudi sri "
    "czech republic kingdom emirates islands info personal incorporated investments markets unlimited "
    "sons research lines transit data "
)
_ORG_WORDS = frozenset(_ORG_WORD_TABLE.split())
# At most twelve items: an unbounded list ("A, A, A, ..." with no "and") is quadratic to scan.
_LIST = re.compile(rf"\b{_CAPW}(?:,[ ]{_CAPW}){{0,11}},?[ ](?:and|or|&)[ ]{_CAPW}\b")
_MAX_SURFACES: Final = 256
# A text that opens with one capitalised word and a verb, and refers to someone as he or she.
_OPENING = re.compile(rf"\A[ \t\"“]*({_CAPW})[ ](?=[a-z])")
_PERSONAL_PRONOUN = re.compile(r"\b(?i:he|she|him|her|his|hers|himself|herself)\b")
_FUNCTION_WORD_TABLE: Final = (
    "the this that these those it its he she they we i you my our his her their a an there here "
    "what who when where why how if but and or so please hello hi hey yes no one some all any each "
    "every many most after before since while because as at in on by for from with without about to "
    "of not never also then now today yesterday tomorrow dear thanks thank sorry maybe perhaps "
    "unlike like "
)
_FUNCTION_WORDS = frozenset(_FUNCTION_WORD_TABLE.split())
_WORD = re.compile(rf"{_CAPW}")

Spans = list[tuple[int, int, str, float]]


def _context_spans(text: str) -> Iterable[tuple[int, int]]:
    for s, e in _context_candidates(text):
        if text[s:e].split(maxsplit=1)[0].lower() not in _FUNCTION_WORDS:
            yield s, e


def _context_candidates(text: str) -> Iterable[tuple[int, int]]:
    for pattern in (
        _HONORIFIC,
        _ROLE,
        _SPEECH,
        _GENITIVE,
        _NAME_LABEL,
        _NAME_AFTER_NOUN,
        _NAME_CREDENTIAL,
        _NAME_SUBJECT,
    ):
        for m in pattern.finditer(text):
            yield m.span(1)
    # Speaker labels count only in a dialogue: two turns or more.
    speakers = [m for m in _SPEAKER.finditer(text) if m.group(1).lower() not in _LABELS]
    if len(speakers) >= 2:
        yield from (m.span(1) for m in speakers)


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _looks_personal(value: str) -> bool:
    """An ORGANIZATION guess shaped like a person's name: "Given Family" or "Given X Family", no org words."""
    if _MIDDLE_INITIAL.match(value):
        return True
    if not _TWO_WORDS.match(value):
        return False
    return not any(w.lower().strip(".") in _ORG_WORDS for w in value.split())


def _as_person(span: tuple[int, int, str, float]) -> tuple[int, int, str, float]:
    return (span[0], span[1], "PERSON", max(span[3], PERSON_CONTEXT_SCORE))


def _job_titles(text: str, spans: Spans) -> Spans:
    """TITLE spans: "worked ... as X", "Name, the X, said", and the line under a letterhead's name line."""
    found: Spans = []
    for pattern in (_AS_JOB, _APPOSITIVE_JOB):
        for m in pattern.finditer(text):
            if _JOB_HEAD.search(m.group(1)):
                found.append((m.start(1), m.end(1), "TITLE", PERSON_CONTEXT_SCORE))
    for m in _EMPLOYER.finditer(text):
        found.append((m.start(1), m.end(1), "ORGANIZATION", PERSON_CONTEXT_SCORE))
    if "\n" in text:
        person = {(s, e) for s, e, t, _ in spans if t == "PERSON"}
        lines = [m.span(1) for m in _LINE.finditer(text) if m.end(1) > m.start(1)]
        titles: set[tuple[int, int]] = set()
        for prev, cur in itertools.pairwise(lines):
            gap = text[prev[1] : cur[0]]
            value = text[cur[0] : cur[1]]
            if (
                prev in person
                and gap.count("\n") <= 2
                and len(value.split()) <= 6
                and not any(c.isdigit() or c in ":@/" for c in value)
                and _JOB_HEAD.search(value)
            ):
                found.append((cur[0], cur[1], "TITLE", PERSON_CONTEXT_SCORE))
                titles.add(cur)
        # Letterhead: name, [title,] firm, then the street (or the name again): the firm's line.
        street = [(s, e) for s, e, t, _ in spans if t == "STREET_ADDRESS"]
        for prev, cur, nxt in zip(lines, lines[1:], lines[2:], strict=False):
            value = text[cur[0] : cur[1]]
            if (
                (prev in person or prev in titles)
                and cur not in person
                and cur not in titles
                and len(value.split()) <= 5
                and not any(c.isdigit() or c in ":@/" for c in value)
                and (nxt in person or any(_overlaps(nxt, st) for st in street) or text[nxt[0]].isdigit())
            ):
                found.append((cur[0], cur[1], "ORGANIZATION", PERSON_CONTEXT_SCORE))
    return found


def refine_names(text: str, spans: Spans) -> Spans:
    """Add and relabel PERSON spans; returns a new candidate list (overlaps are resolved afterwards)."""
    out: Spans = [
        _as_person(x)
        if x[2] == "ORGANIZATION" and x[3] <= _NER_SCORE and _looks_personal(text[x[0] : x[1]])
        else x
        for x in spans
    ]
    for s, e in _context_spans(text):
        out.append((s, e, "PERSON", PERSON_CONTEXT_SCORE))
    if "\n" in text.strip():
        located = [(s, e) for s, e, t, _ in out if t in {"LOCATION", "STREET_ADDRESS", "ZIP_CODE", "TITLE"}]
        for m in _NAME_LINE.finditer(text):
            # The first line of a block: of the text, or after a blank line (a company line comes second).
            if not _BLOCK_START.search(text[: m.start()]):
                continue
            words = m.group(1).split()
            if any(w.lower().strip(".") in _ORG_WORDS for w in words):
                continue
            if not any(_overlaps(m.span(1), loc) for loc in located):
                out.append((m.start(1), m.end(1), "PERSON", PERSON_CONTEXT_SCORE))

    out.extend(_job_titles(text, out))
    opening = _OPENING.match(text)
    if (
        opening
        and opening.group(1).lower() not in _FUNCTION_WORDS
        and _PERSONAL_PRONOUN.search(text, opening.end())
    ):
        out.append((opening.start(1), opening.end(1), "PERSON", PERSON_CONTEXT_SCORE))

    # Lists of single capitalised words: one PERSON item makes each item a PERSON.
    for m in _LIST.finditer(text):
        items = [w.span() for w in _WORD.finditer(m.group())]
        items = [(m.start() + a, m.start() + b) for a, b in items]
        # "Smith, Jones and Brown" alone is the usual shape of a firm's name; a colon introduces a list.
        if len(items) == 3 and not re.search(r":[ \t]*$", text[: m.start()]):
            continue
        if any(t == "PERSON" and any(_overlaps((s, e), it) for it in items) for s, e, t, _ in out):
            out = [x for x in out if not (x[2] == "ORGANIZATION" and _overlaps((x[0], x[1]), m.span()))]
            out.extend((a, b, "PERSON", PERSON_CONTEXT_SCORE) for a, b in items)

    # Same surface elsewhere in the text: full names, and each of their words (capitals in title case too).
    surfaces: set[str] = set()
    for s, e, t, _ in out:
        if t == "PERSON":
            words = [w.strip(",") for w in text[s:e].split()]
            # Only name-shaped surfaces travel: capitalised words, none of them a function word.
            if not words or not all(w and w[0].isupper() and w.lower() not in _FUNCTION_WORDS for w in words):
                continue
            surfaces.add(text[s:e])
            if len(words) > 1:
                for w in words:
                    if len(w) > 2 and w.lower() not in _NEVER_NAMES:
                        surfaces.add(w.title() if w.isupper() and len(w) > 3 else w)
                    if len(w) > 3 and w.isupper():
                        surfaces.add(w)
    if surfaces:
        out = [
            _as_person(x)
            if x[2] in {"ORGANIZATION", "LOCATION"} and x[3] <= _NER_SCORE and text[x[0] : x[1]] in surfaces
            else x
            for x in out
        ]
        # Characters already inside a PERSON span (a bitmap: the check stays linear in the text's length).
        person = bytearray(len(text))
        for s, e, t, _ in out:
            if t == "PERSON":
                person[s:e] = b"\x01" * (e - s)
        # Longest first; a real note has a few dozen surfaces: a text with hundreds propagates only the first.
        for value in sorted(surfaces, key=lambda v: (-len(v), v))[:_MAX_SURFACES]:
            # Any case ("OKONKWO, ROSA" in the header, "Okonkwo" in the text), but capitalised.
            for m in re.finditer(rf"(?<![\w'’-]){re.escape(value)}(?![\w'’-])", text, re.IGNORECASE):
                if m.group()[0].isupper() and not any(person[m.start() : m.end()]):
                    out.append((m.start(), m.end(), "PERSON", PERSON_CONTEXT_SCORE))
                    person[m.start() : m.end()] = b"\x01" * (m.end() - m.start())
    return out
