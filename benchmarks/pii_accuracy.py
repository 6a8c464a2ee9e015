"""PII detection accuracy and latency on presidio-research synth_dataset_v2 (tests/assets/data/pii).

Span-level precision, recall and F2 (beta 2: recall weighs four times precision), overall and per gold
entity type, under two matchings:

- overlap: a gold span is found when a predicted span of a compatible type overlaps it; a predicted span is
  correct when it overlaps a gold span of a compatible type. Gold segmentation of addresses is inconsistent
  in this set (one block, or street, unit, city, country and ZIP as separate spans), so this is the headline.
- exact: same type family and identical character offsets.

Also token-level (whitespace tokens, the presidio-evaluator convention the published 0.618 / 0.845 use), and
latency per KB of input. Templates are split by template_id parity into a "dev" half (the one rules were
written against) and a "held-out" half, to show how much of the score is fitted to the templates.

Usage: .venv/bin/python benchmarks/pii_accuracy.py [--data PATH] [--limit N] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / "tests" / "assets" / "data" / "pii" / "synth_dataset_v2.json"

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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--errors", type=int, default=0, help="print N misses and N false positives")
    args = ap.parse_args()

    from enclavia.protect.detect import Detector

    if not args.data.is_file():
        raise SystemExit(f"no data set at {args.data}: pass --data PATH/synth_dataset_v2.json")
    records = json.loads(args.data.read_text())
    if args.limit:
        records = records[: args.limit]
    t0 = time.perf_counter()
    detector = Detector()
    load_s = time.perf_counter() - t0
    detector.detect("warm up with John Smith in Boston on 2/8/2021.")

    tallies = {
        k: {"overlap": Tally(), "exact": Tally(), "untyped overlap": Tally()}
        for k in ("all", "dev", "held-out")
    }
    tok = {k: [0, 0, 0] for k in tallies}
    per_kb: list[float] = []
    misses: list[str] = []
    fps: list[str] = []
    for rec in records:
        text = rec["full_text"]
        gold = [(s["start_position"], s["end_position"], s["entity_type"]) for s in rec["spans"]]
        start = time.perf_counter()
        spans = detector.detect(text)
        elapsed = time.perf_counter() - start
        per_kb.append(elapsed * 1000 / max(len(text.encode()) / 1024, 1e-9))
        pred = [(s.start, s.end, s.type) for s in spans]
        half = "dev" if int(rec.get("template_id", 0)) % 2 == 0 else "held-out"
        for key in ("all", half):
            tallies[key]["overlap"].add(gold, pred, exact=False)
            tallies[key]["exact"].add(gold, pred, exact=True)
            tallies[key]["untyped overlap"].add(gold, pred, exact=False, typed=False)
            for i, n in enumerate(token_counts(text, gold, pred)):
                tok[key][i] += n
        if args.errors:
            for gs, ge, gt in gold:
                if not any(
                    PRED_FAMILY.get(pt) == GOLD_FAMILY[gt] and _overlaps((ps, pe), (gs, ge))
                    for ps, pe, pt in pred
                ):
                    misses.append(f"MISS {gt:16} {text[gs:ge]!r:40} in {text[:120]!r}")
            for ps, pe, pt in pred:
                if not any(
                    PRED_FAMILY.get(pt) == GOLD_FAMILY[gt] and _overlaps((ps, pe), (gs, ge))
                    for gs, ge, gt in gold
                ):
                    fps.append(f"FP   {pt:16} {text[ps:pe]!r:40} in {text[:120]!r}")
    total_kb = sum(len(r["full_text"].encode()) for r in records) / 1024

    def line(name: str, p: float, r: float, f: float) -> str:
        return f"| {name} | {p:.3f} | {r:.3f} | {f:.3f} |"

    out = [f"records: {len(records)}, {total_kb:.0f} KB; detector load {load_s:.1f} s", ""]
    out += ["| set / matching | precision | recall | F2 |", "|---|---|---|---|"]
    for key in ("all", "dev", "held-out"):
        for kind in ("overlap", "exact", "untyped overlap"):
            out.append(line(f"{key} / span {kind}", *tallies[key][kind].overall()))
        tp, fp, fn = tok[key]
        p, r = tp / max(1, tp + fp), tp / max(1, tp + fn)
        out.append(line(f"{key} / token", p, r, fbeta(p, r)))
    out += ["", "| gold type | n | precision | recall | F2 |", "|---|---|---|---|---|"]
    for gt, n, p, r, f in tallies["all"]["overlap"].per_type():
        out.append(f"| {gt} | {n} | {p:.3f} | {r:.3f} | {f:.3f} |")
    q = statistics.quantiles(per_kb, n=100)
    out += [
        "",
        f"latency per KB: p50 {q[49]:.1f} ms, p95 {q[94]:.1f} ms, mean {statistics.fmean(per_kb):.1f} ms "
        f"(per record, single thread)",
    ]
    print("\n".join(out))
    if args.errors:
        import random

        random.seed(0)
        for row in random.sample(misses, min(args.errors, len(misses))):
            print(row)
        for row in random.sample(fps, min(args.errors, len(fps))):
            print(row)


if __name__ == "__main__":
    main()
