"""report.html: a test set's summary as one page a person can send to a colleague.

Self-contained: the styles are in the page and the histogram is SVG drawn here, so the file shows
the same anywhere, offline, and runs nothing (no script). Everything from the set (paths, labels,
reasons) is escaped: a clip named `<script>` is shown as that name.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path

from .testset_summary import diff_of, histogram, reason_of
from .testset_transcripts import (
    CER_AGAINST_TEXT,
    CER_BETWEEN_MODELS,
    TEXT,
    TEXT_CLIPS,
    TRANSCRIBED_CLIPS,
    TRANSCRIPTS_DIFFERING,
    TRANSCRIPTS_IDENTICAL,
    WER_AGAINST_TEXT,
    transcribed,
)

UNREADABLE_SHOWN = 50  # clips listed with why they could not be compared; the rest are in results.jsonl
DIFFERING_SHOWN = 50  # clips listed with both models' differing transcripts; the rest are in results.jsonl

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 60em;
       color: #1d1d1f; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.15em; margin-top: 1.8em; }
.verdict { font-size: 1.2em; font-weight: 600; padding: 0.4em 0.8em; border-radius: 6px; display: inline-block; }
.pass { background: #e3f5e8; color: #0b6b2c; } .fail { background: #fde8e8; color: #a31515; }
.none { background: #eee; color: #444; }
table { border-collapse: collapse; margin: 0.6em 0; } td, th { padding: 0.25em 0.8em; text-align: left;
       border-bottom: 1px solid #ddd; vertical-align: top; }
th { background: #f5f5f7; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: #666; } code { font-size: 0.9em; word-break: break-all; }
svg text { font-family: system-ui, sans-serif; font-size: 11px; fill: #333; }
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _number(value, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _percent(value) -> str:
    return "—" if value is None else f"{value * 100:.2f} %"


def histogram_svg(values: Sequence[float], tolerance: float, width: int = 640, height: int = 220) -> str:
    """Per-clip max |diff| as bars on a log axis, the tolerance as a red line."""
    found = histogram(values, tolerance)
    edges, counts, infinite = found["edges"], found["counts"], found["infinite"]
    left, right, top, bottom = 44, 16, 12, 40
    extra = 1 if infinite else 0
    plot_w, plot_h = width - left - right, height - top - bottom
    slots = len(counts) + extra
    tallest = max([*counts, infinite, 1])
    low, high = math.log10(edges[0]), math.log10(edges[-1])
    bar_w = plot_w / slots
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="histogram of per-clip max |diff|">',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#888"/>']
    for index, count in enumerate(counts):
        if not count:
            continue
        h = plot_h * count / tallest
        colour = "#2f7d4f" if edges[index + 1] <= tolerance * (1 + 1e-9) else "#c0392b"
        parts.append(f'<rect x="{left + index * bar_w + 1:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w - 2:.1f}" '
                     f'height="{h:.1f}" fill="{colour}"><title>{count} clip{"s" if count != 1 else ""}: '
                     f'{edges[index]:.2g} – {edges[index + 1]:.2g}</title></rect>')
    if infinite:
        h = plot_h * infinite / tallest
        parts.append(f'<rect x="{left + len(counts) * bar_w + 1:.1f}" y="{top + plot_h - h:.1f}" '
                     f'width="{bar_w - 2:.1f}" height="{h:.1f}" fill="#7f1d1d"><title>{infinite} clip(s) whose outputs '
                     'could not be compared</title></rect>')
        parts.append(f'<text x="{left + (len(counts) + 0.5) * bar_w:.1f}" y="{top + plot_h + 14}" '
                     'text-anchor="middle">∞</text>')
    for decade in range(int(low), int(high) + 1):
        x = left + (decade - low) / (high - low) * (len(counts) * bar_w)
        parts.append(f'<line x1="{x:.1f}" y1="{top + plot_h}" x2="{x:.1f}" y2="{top + plot_h + 4}" stroke="#888"/>')
        parts.append(f'<text x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="middle">1e{decade}</text>')
    x = left + (math.log10(tolerance) - low) / (high - low) * (len(counts) * bar_w)
    parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h}" stroke="#d00" stroke-width="2" '
                 'stroke-dasharray="5,3"/>')
    near_right = x > left + plot_w * 0.7  # the label goes on the line's left where the right has no room
    parts.append(f'<text x="{x - 4 if near_right else x + 4:.1f}" y="{top + 10}" fill="#d00" '
                 f'text-anchor="{"end" if near_right else "start"}">tolerance {tolerance:g}</text>')
    parts.append(f'<text x="{left - 6}" y="{top + 10}" text-anchor="end">{tallest}</text>')
    parts.append(f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end">0</text>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle">per-clip max |diff| '
                 '(log scale); clips per bin</text>')
    parts.append("</svg>")
    return "".join(parts)


def _rows(pairs) -> str:
    return "".join(f"<tr><th>{_e(name)}</th><td class=num>{value}</td></tr>" for name, value in pairs)


def render_report(summary: dict, records: Sequence[dict]) -> str:
    """The page, from a summary and the records of the clips it sums up (in the set's order)."""
    verdict = summary.get("verdict")
    complete = summary.get("complete", True)
    if verdict == "pass":
        headline, css = "pass: every clip compared agrees within the tolerance", "pass"
    elif verdict == "fail":
        headline, css = f"fail: {summary['failed']} clip{'s' if summary['failed'] != 1 else ''} beyond the tolerance", "fail"
    else:
        headline, css = "no verdict: " + ("the run was stopped before every clip was compared" if not complete
                                          else "no clip could be compared"), "none"
    dataset = summary.get("dataset") or {}
    spread = summary.get("max_abs_diff") or {}
    compared_values = [diff_of(r) for r in records if r.get("verdict") in ("pass", "fail")]
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        "<meta name=viewport content='width=device-width, initial-scale=1'>",
        f"<title>Speechport test set: {_e(Path(str(dataset.get('path', ''))).name)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Proof on a test set</h1>",
        f"<p class=muted>{_e(summary.get('source', ''))} → {_e(summary.get('converted', ''))}<br>"
        f"test set: {_e(dataset.get('path', ''))} ({_e(dataset.get('form', ''))}); original: "
        f"{_e(summary.get('original_backend', 'reference'))}; recipe: {_e(summary.get('recipe', ''))}</p>",
        f"<p><span class='verdict {css}'>{_e(headline)}</span></p>",
        "<h2>Clips</h2><table>",
        _rows([("in the set", summary.get("clips")), ("done", summary.get("done")),
               ("passed", summary.get("passed")), ("failed", summary.get("failed")),
               ("could not be compared", summary.get("unreadable")),
               *([("hit an error in Speechport", summary.get("errors"))] if summary.get("errors") else [])]),
        "</table>",
        "<h2>Per-clip max |diff|</h2>",
        histogram_svg(compared_values, float(summary.get("tolerance") or 5e-3)) if compared_values else
        "<p class=muted>no clip was compared</p>",
        "<table>",
        _rows([("median", _number(spread.get("median"))), ("95th percentile", _number(spread.get("p95"))),
               ("99th percentile", _number(spread.get("p99"))), ("worst", _number(spread.get("worst"))),
               ("tolerance", _number(summary.get("tolerance")))]),
        "</table>",
    ]
    agreement = _agreement(summary)
    if agreement:
        parts += ["<h2>What the two models decide</h2><table><tr><th></th><th>original</th><th>converted</th>"
                  "<th></th></tr>", agreement, "</table>"]
    worst = summary.get("worst_clips") or []
    if worst:
        parts.append("<h2>The worst clips</h2><table><tr><th>clip</th><th>verdict</th><th>max |diff|</th>"
                     "<th>first divergent layer</th><th>frames</th></tr>")
        for clip in worst:
            parts.append(f"<tr><td><code>{_e(clip.get('key', clip.get('audio')))}</code></td>"
                         f"<td>{_e(clip.get('verdict'))}</td><td class=num>{_number(clip.get('max_abs_diff'))}</td>"
                         f"<td>{_e(clip.get('first_divergent_layer') or '—')}</td>"
                         f"<td class=num>{_number(clip.get('frames'))}</td></tr>")
        parts.append("</table>")
    differing = [r for r in transcribed(records) if r["transcript_original"] != r["transcript_converted"]]
    if differing:
        parts.append(f"<h2>Clips the two models transcribe differently ({len(differing)})</h2><table><tr><th>clip</th>"
                     "<th>original</th><th>converted</th><th>reference text</th></tr>")
        for record in differing[:DIFFERING_SHOWN]:
            parts.append(f"<tr><td><code>{_e(record.get('key'))}</code></td><td>{_e(record['transcript_original'])}"
                         f"</td><td>{_e(record['transcript_converted'])}</td><td>{_e(record.get(TEXT) or '—')}</td></tr>")
        parts.append("</table>")
        if len(differing) > DIFFERING_SHOWN:
            parts.append(f"<p class=muted>and {len(differing) - DIFFERING_SHOWN} more: see results.jsonl</p>")
    skipped = [r for r in records if r.get("verdict") not in ("pass", "fail")]
    if skipped:
        parts.append(f"<h2>Clips not compared ({len(skipped)})</h2><table><tr><th>clip</th><th>why</th></tr>")
        for record in skipped[:UNREADABLE_SHOWN]:
            parts.append(f"<tr><td><code>{_e(record.get('key'))}</code></td><td>{_e(reason_of(record))}</td></tr>")
        parts.append("</table>")
        if len(skipped) > UNREADABLE_SHOWN:
            parts.append(f"<p class=muted>and {len(skipped) - UNREADABLE_SHOWN} more: see results.jsonl</p>")
    notes = summary.get("notes") or []
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{_e(note)}</li>" for note in notes) + "</ul>")
    run = summary.get("run") or {}
    workers, now, kept = run.get("workers", 0), run.get("compared_now", 0), run.get("resumed", 0)
    parts.append(f"<p class=muted>{_e(_count(workers, 'worker'))} ({_e(run.get('backend', ''))}); "
                 f"{_e(_count(now, 'clip'))} compared in this run, {_e(kept)} kept from an earlier one; models {_e(str(summary.get('models', ''))[:16])}…; made by Speechport</p>")
    parts.append("</body></html>\n")
    return "".join(parts)


def _count(number, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _agreement(summary: dict) -> str:
    rows = []
    if summary.get("top1_agreement") is not None:
        rows.append(f"<tr><th>top-1 agreement</th><td class=num colspan=2>{_percent(summary['top1_agreement'])}</td>"
                    f"<td class=muted>{summary.get('top1_disagreements', 0)} clip(s) differ</td></tr>")
    if summary.get("accuracy_original") is not None:
        rows.append(f"<tr><th>accuracy</th><td class=num>{_percent(summary['accuracy_original'])}</td>"
                    f"<td class=num>{_percent(summary['accuracy_converted'])}</td>"
                    f"<td class=muted>on {summary.get('labelled_clips')} labelled clips</td></tr>")
    if summary.get("eer_original") is not None or summary.get("trials"):
        rows.append(f"<tr><th>EER</th><td class=num>{_percent(summary.get('eer_original'))}</td>"
                    f"<td class=num>{_percent(summary.get('eer_converted'))}</td>"
                    f"<td class=muted>{summary.get('trials_scored', 0)} of {summary.get('trials', 0)} trials; largest "
                    f"score difference {_number(summary.get('score_max_abs_diff'))}</td></tr>")
    if summary.get(TRANSCRIBED_CLIPS) is not None:
        rows.append(f"<tr><th>transcripts identical</th><td class=num colspan=2>"
                    f"{_percent(summary[TRANSCRIPTS_IDENTICAL])}</td><td class=muted>"
                    f"{summary[TRANSCRIPTS_DIFFERING]} of {summary[TRANSCRIBED_CLIPS]} clip(s) differ</td></tr>"
                    f"<tr><th>character error rate between the models</th><td class=num colspan=2>"
                    f"{_percent(summary[CER_BETWEEN_MODELS])}</td><td class=muted>the converted model's transcripts "
                    f"against the original's, over every clip</td></tr>")
        if summary.get(TEXT_CLIPS):
            for title, names in (("character error rate against the text", CER_AGAINST_TEXT),
                                 ("word error rate against the text", WER_AGAINST_TEXT)):
                rows.append(f"<tr><th>{title}</th><td class=num>{_percent(summary[names['original']])}</td>"
                            f"<td class=num>{_percent(summary[names['converted']])}</td>"
                            f"<td class=muted>on {summary[TEXT_CLIPS]} clip(s) with a reference text</td></tr>")
        else:
            rows.append("<tr><th>error rate against the text</th><td class=num>—</td><td class=num>—</td>"
                        "<td class=muted>no clip has a reference text</td></tr>")
    diarization = summary.get("speaker_frame_disagreement")
    if diarization:
        rows.append(f"<tr><th>speaker decisions</th><td class=num colspan=2>{_percent(diarization['mean'])} of frames "
                    f"differ on average</td><td class=muted>worst clip {_percent(diarization['worst'])}; "
                    f"{diarization['clips_with_any']} of {diarization['clips']} clips differ anywhere</td></tr>")
    return "".join(rows)
