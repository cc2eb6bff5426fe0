"""The records that go with an export: manifests a spreadsheet can open safely, and an audit
report a person would rather look at than read (one self-contained HTML file, printable)."""

from __future__ import annotations

import base64
import csv
import html
import io
from datetime import datetime, timezone

from .shown import as_line

# A spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def utc_now() -> str:
    """Now, as every record stores a time: UTC, ISO 8601, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def local_time(utc_iso: str | None) -> str:
    """A stored UTC time as this machine's local time, with its offset."""
    if not utc_iso:
        return ""
    return datetime.fromisoformat(utc_iso).astimezone().isoformat(timespec="seconds")


# Audit details kept for the machine (hashes, settings, face lists), not shown in the log's text.
MACHINE_DETAIL = ("fingerprint", "settings", "faces", "before")


def detail_text(detail: dict) -> str:
    """An audit entry's detail as one line a person reads."""
    return "; ".join(f"{k}: {v}" for k, v in detail.items() if k not in MACHINE_DETAIL)


def inert(value) -> str:
    """A CSV cell that stays text in any spreadsheet: a leading formula character is quoted."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_text(rows: list[dict], fields: list[str]) -> str:
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(fields)
    for row in rows:
        writer.writerow([inert(row.get(field)) for field in fields])
    return table.getvalue()


_STYLE = """
body{font-family:sans-serif;margin:2rem;color:#222} h1{font-size:1.5rem} h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0} td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;
vertical-align:top;font-size:.85rem} .photo{page-break-inside:avoid;border-top:2px solid #888;margin-top:1.5rem;
padding-top:.5rem} img{max-width:320px;border:1px solid #999} .held{color:#a00} @media print{body{margin:0}}
"""


def audit_report(title: str, summary: list[tuple[str, str]], photos: list[dict],
                 history: dict[int, list[dict]]) -> str:
    """The report: a summary, a table of every photo with its outcome, then each exported photo
    with its anonymised thumbnail, its residual check and its decision history. Every string
    from a user (names, comments) is escaped: it is text, never markup, and a direction override
    in it is shown as its escape (`core.shown`)."""
    def e(text) -> str:
        return html.escape(as_line(text))

    out = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{e(title)}</title>"
           f"<style>{_STYLE}</style></head><body><h1>{e(title)}</h1><table>"]
    out += [f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in summary]
    out.append("</table><h2>Every photo and video of the session</h2><table><tr><th>#</th><th>original</th>"
               "<th>outcome</th><th>published as</th><th>reviewer</th><th>decided</th><th>comment or reason</th></tr>")
    for n, photo in enumerate(photos, 1):
        outcome = photo["outcome"]
        out.append(f"<tr><td>{n}</td><td>{e(photo['original_name'])}</td>"
                   f"<td class='{'held' if outcome != 'exported' else ''}'>{e(outcome)}</td>"
                   f"<td>{e(photo.get('output_name') or '')}</td><td>{e(photo.get('reviewer') or '')}</td>"
                   f"<td>{e(photo.get('decided_at') or '')}</td>"
                   f"<td>{e(photo.get('reason') or photo.get('comment') or '')}</td></tr>")
    out.append("</table><h2>Exported photos and videos</h2>")
    for photo in (p for p in photos if p["outcome"] == "exported"):
        thumb = base64.b64encode(photo["thumbnail"]).decode() if photo.get("thumbnail") else ""
        out.append(f"<div class='photo'><h3>{e(photo['output_name'])} ({e(photo['original_name'])})</h3>")
        if thumb:
            out.append(f"<img alt='anonymised {e(photo['output_name'])}' src='data:image/jpeg;base64,{thumb}'>")
        out.append(f"<p>Faces covered: {photo['faces_found'] - photo['faces_disabled'] + photo['faces_added_by_hand']}"
                   f" (found {photo['faces_found']}, switched off {photo['faces_disabled']}, drawn by hand "
                   f"{photo['faces_added_by_hand']}). Residual check: {e(photo['residual'])}."
                   + (f" Sound: {e(photo['sound'])}." if photo.get("sound") else "")
                   + (f" Not written: {e(photo['left_out'])}." if photo.get("left_out") else "")
                   + (f" Only a part exported: {e(photo['part'])}." if photo.get("part") else "")
                   + (f" Sound silenced: {e(photo['silenced'])}." if photo.get("silenced") else "") + "</p>"
                   "<table><tr><th>when</th><th>who</th><th>what</th><th>detail</th></tr>")
        for step in history.get(photo["image_id"], []):
            out.append(f"<tr><td>{e(step['at'])}</td><td>{e(step['actor'])}</td><td>{e(step['action'])}</td>"
                       f"<td>{e(step['detail'])}</td></tr>")
        out.append("</table></div>")
    out.append("</body></html>")
    return "".join(out)
