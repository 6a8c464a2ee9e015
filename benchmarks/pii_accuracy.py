"""PII/PHI detection accuracy and latency: the presidio-research set and enclavia's clinical-note set.

Three sets, each scored on its own:

- ``presidio``: presidio-research ``synth_dataset_v2`` (1,500 short sentences). The path is ``--data``; by
  default ``tests/assets/data/pii`` in the repository, else ``../shared/data/pii`` beside it.
- ``dev`` and ``held-out``: synthetic US clinical notes from ``benchmarks/clinical_notes.py`` (seeded;
  disjoint value pools, label wordings and layouts). Rules are written against ``dev``; ``--errors`` never
  prints held-out errors.

Character level (the issue-18 measure): over non-whitespace characters, recall = share of PHI characters
covered by some detected span (of any type), precision = share of detected characters that are PHI.
Professions (clinical ``PROFESSION``, presidio ``TITLE``) are not counted: their characters are left out of
both sides, and the detector's own ``TITLE`` spans (honorifics, job titles) are not detections of PHI.

Span level: for the clinical sets, a gold span is found when some detection overlaps it, and a detection is
correct when it overlaps a PHI span. For presidio, typed span overlap and exact match as before (gold type
family against predicted type family), plus token level (whitespace tokens, the presidio-evaluator convention
the published 0.618 / 0.845 use); F2 weighs recall four times precision.

Latency: p50 and p95 of ``Detector.detect`` on clinical notes of 500 to 700 characters, one thread.

Usage: .venv/bin/python benchmarks/pii_accuracy.py [--sets presidio,dev,held-out] [--notes N] [--limit N]
       [--data PATH] [--errors N] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRESIDIO_FILE = "synth_dataset_v2.json"
sys.path.insert(0, str(Path(__file__).resolve().parent))

import clinical_notes  # noqa: E402  (a sibling module, not an installed package)


def default_presidio_data() -> Path:
    """The presidio-research set: tests/assets/data/pii in the repository, else ../shared/data/pii."""
    for base in (REPO / "tests" / "assets" / "data" / "pii", REPO.parent / "shared" / "data" / "pii"):
        if (base / PRESIDIO_FILE).is_file():
            return base / PRESIDIO_FILE
    return REPO / "tests" / "assets" / "data" / "pii" / PRESIDIO_FILE


# Gold type -> family; predicted type -> family. Spans match only within a family.
GOLD_FAMILY = {
    "PERSON": "PERSON",
    "STREET_ADDRESS": "LOCATION",
    "GPE": "LOCATION",
    "ZIP_CODE": "LOCATION",
    "ORGANIZATION": "ORGANIZATION",
    "CREDIT_CARD": "CREDIT_CARD",
    "DATE_TIME": "DATE_TIME",
    "TITLE": "TITLE",
    "PHONE_NUMBER": "PHONE_NUMBER",
    "AGE": "AGE",
    "NRP": "NRP",
    "EMAIL_ADDRESS": "EMAIL_ADDRESS",
    "DOMAIN_NAME": "URL",
    "IBAN_CODE": "IBAN_CODE",
    "US_SSN": "US_SSN",
    "IP_ADDRESS": "IP_ADDRESS",
    "US_DRIVER_LICENSE": "US_DRIVER_LICENSE",
}
PRED_FAMILY = {
    "PERSON": "PERSON",
    "LOCATION": "LOCATION",
    "STREET_ADDRESS": "LOCATION",
    "ZIP_CODE": "LOCATION",
    "ORGANIZATION": "ORGANIZATION",
    "CREDIT_CARD": "CREDIT_CARD",
    "DATE_TIME": "DATE_TIME",
    "TITLE": "TITLE",
    "PHONE_NUMBER": "PHONE_NUMBER",
    "AGE": "AGE",
    "AGE_OVER_89": "AGE",
    "NRP": "NRP",
    "EMAIL_ADDRESS": "EMAIL_ADDRESS",
    "URL": "URL",
    "IBAN_CODE": "IBAN_CODE",
    "US_SSN": "US_SSN",
    "IP_ADDRESS": "IP_ADDRESS",
    "US_DRIVER_LICENSE": "US_DRIVER_LICENSE",
    "MRN": "ID",
    "NPI": "ID",
    "ACCOUNT_NUMBER": "ID",
    "HEALTH_PLAN_ID": "ID",
    "MEDICAL_LICENSE": "US_DRIVER_LICENSE",
    "DEVICE_ID": "ID",
    "VEHICLE_ID": "ID",
    "ID": "ID",
}


def fbeta(p: float, r: float, beta: float = 2.0) -> float:
    b2 = beta * beta
    return (1 + b2) * p * r / (b2 * p + r) if p + r else 0.0


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


class Tally:
    def __init__(self) -> None:
        self.tp_gold: dict[str, int] = defaultdict(int)
        self.n_gold: dict[str, int] = defaultdict(int)
        self.tp_pred: dict[str, int] = defaultdict(int)
        self.n_pred: dict[str, int] = defaultdict(int)

    def add(
        self,
        gold: list[tuple[int, int, str]],
        pred: list[tuple[int, int, str]],
        exact: bool,
        typed: bool = True,
    ) -> None:
        if (
            not typed
        ):  # any PII family matches any: what matters for redaction (a name tagged ORG is still hidden)
            gold = [(s, e, "PERSON") for s, e, _ in gold]
            pred = [(s, e, "PERSON") for s, e, _ in pred]
        for gs, ge, gt in gold:
            fam = GOLD_FAMILY[gt]
            self.n_gold[gt] += 1
            hit = any(
                PRED_FAMILY.get(pt) == fam
                and ((ps, pe) == (gs, ge) if exact else _overlaps((ps, pe), (gs, ge)))
                for ps, pe, pt in pred
            )
            self.tp_gold[gt] += hit
        for ps, pe, pt in pred:
            fam = PRED_FAMILY.get(pt, "OTHER")
            self.n_pred[fam] += 1
            hit = any(
                GOLD_FAMILY[gt] == fam and ((ps, pe) == (gs, ge) if exact else _overlaps((ps, pe), (gs, ge)))
                for gs, ge, gt in gold
            )
            self.tp_pred[fam] += hit

    def overall(self) -> tuple[float, float, float]:
        p = sum(self.tp_pred.values()) / max(1, sum(self.n_pred.values()))
        r = sum(self.tp_gold.values()) / max(1, sum(self.n_gold.values()))
        return p, r, fbeta(p, r)

    def per_type(self) -> list[tuple[str, int, float, float, float]]:
        rows = []
        for gt in sorted(self.n_gold, key=lambda t: -self.n_gold[t]):
            fam = GOLD_FAMILY[gt]
            r = self.tp_gold[gt] / self.n_gold[gt]
            p = self.tp_pred[fam] / self.n_pred[fam] if self.n_pred.get(fam) else 0.0
            rows.append((gt, self.n_gold[gt], p, r, fbeta(p, r)))
        return rows


_TOKEN = re.compile(r"\S+")


def token_counts(
    text: str, gold: list[tuple[int, int, str]], pred: list[tuple[int, int, str]]
) -> tuple[int, int, int]:
    """(tp, fp, fn) over whitespace tokens: a token is PII of a family if a span covers part of it."""
    tp = fp = fn = 0
    for m in _TOKEN.finditer(text):
        tok = (m.start(), m.end())
        g = {GOLD_FAMILY[t] for s, e, t in gold if _overlaps(tok, (s, e))}
        p = {PRED_FAMILY.get(t, "OTHER") for s, e, t in pred if _overlaps(tok, (s, e))}
        if g and p and g & p:
            tp += 1
        elif p and not g:
            fp += 1
        elif g and not (g & p):
            fn += 1
            if p:
                fp += 1
    return tp, fp, fn


# Detector type -> Safe Harbor category (the clinical set's gold labels).
PRED_CATEGORY = {
    "PERSON": "NAME",
    "LOCATION": "GEOGRAPHIC",
    "STREET_ADDRESS": "GEOGRAPHIC",
    "ZIP_CODE": "GEOGRAPHIC",
    "ORGANIZATION": "ORGANIZATION",
    "DATE_TIME": "DATE",
    "AGE": "AGE",
    "AGE_OVER_89": "AGE",
    "PHONE_NUMBER": "PHONE_FAX",
    "EMAIL_ADDRESS": "EMAIL",
    "US_SSN": "SSN",
    "MRN": "MRN",
    "ACCOUNT_NUMBER": "HEALTH_PLAN_ACCOUNT",
    "HEALTH_PLAN_ID": "HEALTH_PLAN_ACCOUNT",
    "CREDIT_CARD": "HEALTH_PLAN_ACCOUNT",
    "IBAN_CODE": "HEALTH_PLAN_ACCOUNT",
    "MEDICAL_LICENSE": "LICENSE",
    "US_DRIVER_LICENSE": "LICENSE",
    "DEVICE_ID": "DEVICE_VEHICLE",
    "VEHICLE_ID": "DEVICE_VEHICLE",
    "URL": "URL_IP",
    "IP_ADDRESS": "URL_IP",
    "NPI": "OTHER_ID",
    "ID": "OTHER_ID",
    "NRP": "NRP",
}
# presidio-research gold type -> the same categories, so both sets read alike (NRP kept: that set labels it).
PRESIDIO_CATEGORY = {
    "PERSON": "NAME",
    "STREET_ADDRESS": "GEOGRAPHIC",
    "GPE": "GEOGRAPHIC",
    "ZIP_CODE": "GEOGRAPHIC",
    "ORGANIZATION": "ORGANIZATION",
    "CREDIT_CARD": "HEALTH_PLAN_ACCOUNT",
    "IBAN_CODE": "HEALTH_PLAN_ACCOUNT",
    "DATE_TIME": "DATE",
    "PHONE_NUMBER": "PHONE_FAX",
    "EMAIL_ADDRESS": "EMAIL",
    "DOMAIN_NAME": "URL_IP",
    "IP_ADDRESS": "URL_IP",
    "US_SSN": "SSN",
    "US_DRIVER_LICENSE": "LICENSE",
    "AGE": "AGE",
    "NRP": "NRP",
    "TITLE": "TITLE",
}
NOT_COUNTED = frozenset({"PROFESSION", "TITLE"})  # professions: neither PHI nor a miss
NOT_DETECTIONS = frozenset({"TITLE"})
GOAL_RECALL, GOAL_PRECISION, GOAL_P50_MS = 0.98, 0.85, 50.0

Gold = list[tuple[int, int, str]]


class CharTally:
    """Character coverage (non-whitespace characters), per gold category and per predicted category."""

    def __init__(self) -> None:
        self.gold = defaultdict(int)  # category -> PHI chars
        self.covered = defaultdict(int)  # category -> PHI chars covered by a detection
        self.pred = defaultdict(int)  # predicted category -> detected chars
        self.pred_ok = defaultdict(int)  # predicted category -> detected chars that are PHI
        self.span_gold = defaultdict(int)
        self.span_found = defaultdict(int)
        self.span_pred = defaultdict(int)
        self.span_pred_ok = defaultdict(int)

    def add(self, text: str, gold: Gold, pred: Gold) -> None:
        n = len(text)
        phi = [""] * n
        neutral = [False] * n
        for s, e, t in gold:
            for i in range(s, e):
                if t in NOT_COUNTED:
                    neutral[i] = True
                elif not phi[i]:
                    phi[i] = t
        detected = [""] * n
        for s, e, t in pred:
            for i in range(s, e):
                detected[i] = detected[i] or PRED_CATEGORY.get(t, t)
        for i, ch in enumerate(text):
            if ch.isspace() or (neutral[i] and not phi[i]):
                continue
            if phi[i]:
                self.gold[phi[i]] += 1
                self.covered[phi[i]] += bool(detected[i])
            if detected[i]:
                self.pred[detected[i]] += 1
                self.pred_ok[detected[i]] += bool(phi[i])
        for s, e, t in gold:
            if t in NOT_COUNTED:
                continue
            self.span_gold[t] += 1
            self.span_found[t] += any(_overlaps((s, e), (ps, pe)) for ps, pe, _ in pred)
        counted = [(s, e) for s, e, t in gold if t not in NOT_COUNTED]
        neutral_spans = [(s, e) for s, e, t in gold if t in NOT_COUNTED]
        for ps, pe, pt in pred:
            if any(_overlaps((ps, pe), g) for g in neutral_spans) and not any(
                _overlaps((ps, pe), g) for g in counted
            ):
                continue
            cat = PRED_CATEGORY.get(pt, pt)
            self.span_pred[cat] += 1
            self.span_pred_ok[cat] += any(_overlaps((ps, pe), g) for g in counted)

    def overall(self) -> tuple[float, float, float, float]:
        """(char recall, char precision, span recall, span precision)."""
        return (
            _ratio(sum(self.covered.values()), sum(self.gold.values())),
            _ratio(sum(self.pred_ok.values()), sum(self.pred.values())),
            _ratio(sum(self.span_found.values()), sum(self.span_gold.values())),
            _ratio(sum(self.span_pred_ok.values()), sum(self.span_pred.values())),
        )

    def rows(self) -> list[str]:
        cats = sorted(set(self.gold) | set(self.pred), key=lambda c: -self.gold.get(c, 0))
        out = []
        for c in cats:
            out.append(
                f"| {c} | {self.span_gold.get(c, 0)} | {self.gold.get(c, 0)} | "
                f"{_fmt(self.covered.get(c, 0), self.gold.get(c, 0))} | "
                f"{_fmt(self.pred_ok.get(c, 0), self.pred.get(c, 0))} | "
                f"{_fmt(self.span_found.get(c, 0), self.span_gold.get(c, 0))} | "
                f"{_fmt(self.span_pred_ok.get(c, 0), self.span_pred.get(c, 0))} |"
            )
        return out


def _ratio(a: int, b: int) -> float:
    return a / b if b else 0.0


def _fmt(a: int, b: int) -> str:
    return f"{a / b:.3f}" if b else "-"


def _met(value: float, goal: float) -> str:
    return "met" if value >= goal else "not met"


class PlainPresidio:
    """Presidio's AnalyzerEngine and predefined recognizers over enclavia's verified, offline spaCy model.

    The comparison the issue draws ("Presidio 2.2 + spaCy en_core_web_sm, same notes"); nothing is downloaded:
    the NLP engine is the one enclavia already loaded from its pinned directory.
    """

    def __init__(self, enclavia_detector: object) -> None:
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry

        nlp_engine = enclavia_detector._engine.nlp_engine  # type: ignore[attr-defined]
        registry = RecognizerRegistry(supported_languages=["en"])
        registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp_engine)
        self._engine = AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=["en"])

    def detect(self, text: str) -> list[object]:
        from enclavia.protect.detect import Span

        results = self._engine.analyze(text=text, language="en", score_threshold=0.5)
        spans = [
            Span(r.start, r.end, _PLAIN_TYPES.get(r.entity_type, r.entity_type), r.score) for r in results
        ]
        return list(spans)


# Presidio entity names -> the detector types the scorer maps to categories.
_PLAIN_TYPES = {"MEDICAL_LICENSE": "MEDICAL_LICENSE", "US_BANK_NUMBER": "ACCOUNT_NUMBER", "US_PASSPORT": "ID",
                "US_ITIN": "ID", "CRYPTO": "ID", "MAC_ADDRESS": "DEVICE_ID", "UK_NHS": "ID"}  # fmt: skip


def _adversarial() -> None:
    """Rules and name refinements (no spaCy) on MAX_TEXT_CHARS inputs that defeat unbounded patterns."""
    from enclavia.protect.detect import MAX_TEXT_CHARS
    from enclavia.protect.names import refine_names
    from enclavia.protect.recognizers import build_recognizers

    rules = build_recognizers()
    n = MAX_TEXT_CHARS
    inputs = {
        "A-A-A- (one long token)": ("A-" * n)[:n],
        "A'A'A' (apostrophes)": ("A'" * n)[:n],
        "Aaaa, Aaaa, (a list without 'and')": ("Aaaa, " * n)[:n],
        "MRN A1-A1- (a label then a long code)": ("MRN " + "A1-" * n)[:n],
        "1234 1234 (numbers)": ("1234 " * n)[:n],
        "Dr. Xx met Mr. Yy (thousands of names)": " ".join(
            f"Dr. Q{i:x}z met Mr. W{i:x}v." for i in range(n // 28)
        ),
    }
    print("| input (200,000 characters) | rules (s) | name refinements (s) |\n|---|---|---|")
    for name, text in inputs.items():
        t0 = time.perf_counter()
        found = [(r.start, r.end, r.entity_type, r.score) for rule in rules for r in rule.analyze(text, [])]
        t1 = time.perf_counter()
        refine_names(text, found)
        print(f"| {name} | {t1 - t0:.2f} | {time.perf_counter() - t1:.2f} |")


def _load_set(name: str, args: argparse.Namespace) -> list[dict]:
    if name == "presidio":
        records = json.loads(args.data.read_text())
        return records[: args.limit] if args.limit else records
    return clinical_notes.generate(name, args.notes, seed=args.seed)


def _errors(text: str, gold: Gold, pred: Gold, out: list[str]) -> None:
    for gs, ge, gt in gold:
        if gt not in NOT_COUNTED and not any(_overlaps((gs, ge), (ps, pe)) for ps, pe, _ in pred):
            out.append(f"MISS {gt:20} {text[gs:ge]!r:40} ...{text[max(0, gs - 50) : ge + 20]!r}")
        elif gt not in NOT_COUNTED:
            cover = sum(1 for i in range(gs, ge) if any(ps <= i < pe for ps, pe, _ in pred))
            if cover < ge - gs - text[gs:ge].count(" "):
                parts = [text[ps:pe] for ps, pe, _ in pred if _overlaps((gs, ge), (ps, pe))]
                out.append(f"PART {gt:20} {text[gs:ge]!r:40} got {parts!r}")
    for ps, pe, pt in pred:
        if not any(_overlaps((ps, pe), (gs, ge)) for gs, ge, _ in gold):
            out.append(f"FP   {pt:20} {text[ps:pe]!r:40} ...{text[max(0, ps - 40) : pe + 20]!r}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=None, help="presidio-research synth_dataset_v2.json")
    ap.add_argument("--sets", default="presidio,dev,held-out")
    ap.add_argument("--limit", type=int, default=0, help="first N presidio records")
    ap.add_argument("--notes", type=int, default=200, help="clinical notes per split")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--errors", type=int, default=0, help="print N errors (presidio and dev only)")
    ap.add_argument(
        "--adversarial",
        action="store_true",
        help="time rules and name refinements on 200,000-character inputs made to make regexes backtrack",
    )
    ap.add_argument(
        "--baseline",
        action="store_true",
        help="score plain Presidio (its predefined recognizers + the same spaCy model) instead of enclavia",
    )
    args = ap.parse_args()
    args.data = args.data or default_presidio_data()
    sets = [s for s in args.sets.split(",") if s]

    if args.adversarial:
        _adversarial()
        return

    from enclavia.protect.detect import Detector

    t0 = time.perf_counter()
    detector = Detector()
    if args.baseline:
        detector = PlainPresidio(detector)
    load_s = time.perf_counter() - t0
    detector.detect("warm up with John Smith in Boston on 2/8/2021.")
    name = "plain Presidio (predefined recognizers, same spaCy model)" if args.baseline else "enclavia"
    print(f"detector: {name}; load {load_s:.1f} s; sets: {', '.join(sets)}\n")

    note_ms: list[float] = []
    summary: list[str] = []
    for name in sets:
        records = _load_set(name, args)
        chars = CharTally()
        spans_t = {"overlap": Tally(), "exact": Tally()}
        tok = [0, 0, 0]
        errors: list[str] = []
        for rec in records:
            text = rec["full_text"]
            gold = [(s["start_position"], s["end_position"], s["entity_type"]) for s in rec["spans"]]
            start = time.perf_counter()
            found = detector.detect(text)
            elapsed = time.perf_counter() - start
            if name != "presidio" and 500 <= len(text) <= 700:
                note_ms.append(elapsed * 1000)
            pred = [(s.start, s.end, s.type) for s in found if s.type not in NOT_DETECTIONS]
            chars.add(text, [(a, b, PRESIDIO_CATEGORY.get(t, t)) for a, b, t in gold], pred)
            if name == "presidio":
                typed = [(s.start, s.end, s.type) for s in found]
                spans_t["overlap"].add(gold, typed, exact=False)
                spans_t["exact"].add(gold, typed, exact=True)
                for i, k in enumerate(token_counts(text, gold, typed)):
                    tok[i] += k
            if args.errors and name != "held-out":
                _errors(text, gold, pred, errors)
        r, p, sr, sp = chars.overall()
        summary.append(
            f"| {name} | {len(records)} | {r:.3f} | {p:.3f} | {sr:.3f} | {sp:.3f} | "
            f"{_met(r, GOAL_RECALL)} / {_met(p, GOAL_PRECISION)} |"
        )
        print(f"## {name}: {len(records)} records, {sum(chars.span_gold.values())} PHI spans\n")
        print("| category | spans | chars | char recall | char precision | span recall | span precision |")
        print("|---|---|---|---|---|---|---|")
        print("\n".join(chars.rows()))
        print(f"| **all** | | | **{r:.3f}** | **{p:.3f}** | **{sr:.3f}** | **{sp:.3f}** |")
        print(f"\ngoal: char recall >= {GOAL_RECALL} at char precision >= {GOAL_PRECISION}\n")
        if name == "presidio":
            print("| typed span matching | precision | recall | F2 |\n|---|---|---|---|")
            for kind, tally in spans_t.items():
                pp, rr, ff = tally.overall()
                print(f"| {kind} | {pp:.3f} | {rr:.3f} | {ff:.3f} |")
            tp, fp, fn = tok
            pp, rr = tp / max(1, tp + fp), tp / max(1, tp + fn)
            print(f"| token | {pp:.3f} | {rr:.3f} | {fbeta(pp, rr):.3f} |")
            print("\n| gold type | n | precision | recall | F2 |\n|---|---|---|---|---|")
            for gt, n, pp, rr, ff in spans_t["overlap"].per_type():
                print(f"| {gt} | {n} | {pp:.3f} | {rr:.3f} | {ff:.3f} |")
            print("\ngoal (presidio, typed span overlap): F2 >= 0.866 (the landed figure: no regression)\n")
        if errors:
            random.seed(0)
            for row in random.sample(errors, min(args.errors, len(errors))):
                print(row)
            print()
    print("## summary (character level; goal recall >= 0.98 at precision >= 0.85)\n")
    print("| set | records | char recall | char precision | span recall | span precision | goal |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(summary))
    if len(note_ms) >= 2:
        q = statistics.quantiles(note_ms, n=100)
        print(
            f"\nlatency, one clinical note of 500-700 characters ({len(note_ms)} notes): p50 {q[49]:.1f} ms, "
            f"p95 {q[94]:.1f} ms; goal p50 < {GOAL_P50_MS:.0f} ms: {_met(GOAL_P50_MS - q[49], 0.0)}"
        )


if __name__ == "__main__":
    main()
