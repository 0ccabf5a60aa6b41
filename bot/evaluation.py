"""Measure understanding on labelled JSONL (`hubbot eval`): risk recall/precision, false crises, topics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.content.loader import Content
from bot.content.models import RiskLevel
from bot.nlu.pipeline import Understander

NON_CLINICAL_TOPICS = frozenset({"hub", "privacy"})
THRESHOLDS = (RiskLevel.CONCERN, RiskLevel.HIGH, RiskLevel.IMMINENT)


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _risk_report(rows: list[dict[str, Any]], predicted: list[Any], misses: int) -> dict[str, Any]:
    labels = [RiskLevel.parse(r["risk"]) for r in rows]
    levels = [p.risk.level for p in predicted]
    report: dict[str, Any] = {"rows": len(rows), "by_label": {}}
    for label in RiskLevel:
        count = sum(1 for x in labels if x == label)
        if count:
            report["by_label"][label.label] = count
    per_level: dict[str, Any] = {}
    for threshold in THRESHOLDS:
        positives = [i for i, x in enumerate(labels) if x >= threshold]
        flagged = [i for i, y in enumerate(levels) if y >= threshold]
        true_pos = sum(1 for i in positives if levels[i] >= threshold)
        if positives:
            per_level[threshold.label] = {
                "recall": _ratio(true_pos, len(positives)),
                "precision": _ratio(true_pos, len(flagged)),
                "positives": len(positives),
            }
    report["at_level"] = per_level
    crisis_rows = [i for i, x in enumerate(labels) if x >= RiskLevel.HIGH]
    report["crisis_rows_at_concern_or_more"] = _ratio(sum(1 for i in crisis_rows if levels[i] >= RiskLevel.CONCERN), len(crisis_rows))
    benign = [i for i, x in enumerate(labels) if x == RiskLevel.NONE]
    report["false_crisis_rate"] = _ratio(sum(1 for i in benign if levels[i] >= RiskLevel.HIGH), len(benign))
    report["benign_at_concern_or_more"] = _ratio(sum(1 for i in benign if levels[i] >= RiskLevel.CONCERN), len(benign))
    out_of_scope = [i for i in benign if rows[i].get("source_label") == "oos"]
    if out_of_scope:
        report["false_crisis_rate_out_of_scope"] = _ratio(sum(1 for i in out_of_scope if levels[i] >= RiskLevel.HIGH), len(out_of_scope))
    if benign:
        claimed = [i for i in benign if set(predicted[i].intent.topics) - NON_CLINICAL_TOPICS]
        report["benign_claimed_mental_health_topic"] = _ratio(len(claimed), len(benign))
    missed = [i for i in crisis_rows if levels[i] < RiskLevel.HIGH]
    false = [i for i in benign if levels[i] >= RiskLevel.HIGH]
    report["misses"] = [{"text": rows[i]["text"][:160], "label": labels[i].label, "got": levels[i].label} for i in missed[:misses]]
    report["false_crises"] = [{"text": rows[i]["text"][:160], "got": levels[i].label, "signals": list(predicted[i].risk.signals)} for i in false[:misses]]
    return report


def _topic_report(rows: list[dict[str, Any]], understander: Understander, misses: int) -> dict[str, Any]:
    report: dict[str, Any] = {"rows": len(rows)}
    for name, text_of in (("title", lambda r: r["text"]), ("title_and_body", lambda r: f"{r['text']} {r.get('body', '')}".strip())):
        if name == "title_and_body" and not any(r.get("body") for r in rows):
            continue
        correct = 0
        fallback = 0
        wrong: list[dict[str, Any]] = []
        for row in rows:
            result = understander.understand(text_of(row))
            topics = set(result.intent.topics) | set(result.risk.topics)
            if row["topic"] in topics:
                correct += 1
            else:
                if result.intent.intent_id is None:
                    fallback += 1
                if len(wrong) < misses:
                    wrong.append({"text": row["text"][:120], "label": row["topic"], "got": result.intent.intent_id})
        report[name] = {"accuracy": _ratio(correct, len(rows)), "fell_back": _ratio(fallback, len(rows)), "misses": wrong}
    return report


def evaluate_files(content: Content, files: list[Path], *, misses: int = 10) -> dict[str, Any]:
    understander = Understander(content)
    report: dict[str, Any] = {}
    for path in files:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        entry: dict[str, Any] = {}
        risk_rows = [r for r in rows if "risk" in r]
        if risk_rows:
            entry["risk"] = _risk_report(risk_rows, [understander.understand(r["text"]) for r in risk_rows], misses)
        topic_rows = [r for r in rows if "topic" in r]
        if topic_rows:
            entry["topic"] = _topic_report(topic_rows, understander, misses)
        report[path.name] = entry
    return report


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.2f}%"


def format_report(report: dict[str, Any]) -> str:
    lines: list[str] = []
    for name, entry in report.items():
        lines.append(f"== {name}")
        risk = entry.get("risk")
        if risk:
            labels = ", ".join(f"{k}: {v}" for k, v in risk["by_label"].items())
            lines.append(f"  risk rows: {risk['rows']} ({labels})")
            for level, figures in risk["at_level"].items():
                lines.append(f"  at >= {level:8} recall {_pct(figures['recall'])}  precision {_pct(figures['precision'])}  (labelled {figures['positives']})")
            if risk["crisis_rows_at_concern_or_more"] is not None:
                lines.append(f"  crisis rows scored >= concern: {_pct(risk['crisis_rows_at_concern_or_more'])}")
            lines.append(f"  false-crisis rate (none scored >= high): {_pct(risk['false_crisis_rate'])}")
            if "false_crisis_rate_out_of_scope" in risk:
                lines.append(f"  false-crisis rate, out-of-scope rows: {_pct(risk['false_crisis_rate_out_of_scope'])}")
            if "benign_claimed_mental_health_topic" in risk:
                lines.append(f"  benign rows given a mental-health topic: {_pct(risk['benign_claimed_mental_health_topic'])}")
            for miss in risk["misses"]:
                lines.append(f"    miss ({miss['label']} -> {miss['got']}): {miss['text']}")
            for false in risk["false_crises"]:
                lines.append(f"    false crisis ({false['got']}, {','.join(false['signals'])}): {false['text']}")
        topic = entry.get("topic")
        if topic:
            for variant in ("title", "title_and_body"):
                if variant in topic:
                    figures = topic[variant]
                    lines.append(f"  topic accuracy ({variant}): {_pct(figures['accuracy'])} of {topic['rows']}, fell back {_pct(figures['fell_back'])}")
                    for miss in figures["misses"]:
                        lines.append(f"    miss ({miss['label']} -> {miss['got']}): {miss['text']}")
    return "\n".join(lines)
