"""User-supplied text (file names, comments, session and reviewer names) is data: wherever a
page must pass it through Markdown (a heading, a caption), every character Markdown or
Streamlit could act on is escaped, so `![x](http://...)` shows as those characters and fetches
nothing."""

from __future__ import annotations

import string

_SPECIAL = set(string.punctuation)


def plain(text) -> str:
    """`text` escaped for st.markdown and friends: shown exactly as typed."""
    out = []
    for char in str(text):
        if char in _SPECIAL:
            out.append("\\" + char)
        elif char in "\r\n":
            out.append(" ")
        else:
            out.append(char)
    return "".join(out)
