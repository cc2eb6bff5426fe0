"""User-supplied text (file names, session and reviewer names, comments) shown as the characters
it holds, on a terminal and in the dashboard alike: a control character or a direction override
is written as its escape (`\\n`, `\\x1b`, `\\u202e`). An override (U+202E and kin) makes what
follows it read backwards, so that `invoice\\u202egpj.exe` shows as "invoiceexe.jpg"; a control
character can start a line of its own or, on a terminal, hide one."""

from __future__ import annotations

import unicodedata

# Characters that reorder what follows them on screen (bidirectional overrides and isolates).
REORDER = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def as_text(text) -> str:
    """`text` with each control character and direction override written as its escape."""
    return "".join(repr(c)[1:-1] if unicodedata.category(c) == "Cc" or c in REORDER else c for c in str(text))


def as_line(text) -> str:
    """`text` as one line of text (a reviewer's comment's line breaks as spaces), else as `as_text`."""
    return as_text(str(text).replace("\r\n", " ").replace("\r", " ").replace("\n", " "))
