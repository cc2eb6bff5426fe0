"""User-supplied text (file names, comments, session and reviewer names) is data: wherever a
page must pass it through Markdown (a heading, a caption), every character Markdown or
Streamlit could act on is written as a numeric character reference, so `![x](http://...)`
shows as those characters: no image is fetched and no link is made. A direction override or a
control character is shown as its escape (`core.shown`), there as in the widgets that
take text as it is (a select box's options, a table's cells): pass those `as_line(name)`."""

from __future__ import annotations

import re
import string

from core.kinds import is_video
from core.shown import as_line

_SPECIAL = set(string.punctuation)


# Markdown turns bare addresses into links even when their punctuation is escaped: an invisible
# word joiner inside each trigger ("http://", "www.", "a@b") stops it; what is shown is the same.
_JOINER = "\u2060"
_AUTOLINK = re.compile(r"(?i)(?<=:)(?=//)|(?<=www)(?=\.)|(?=@)")


def plain(text) -> str:
    """`text` escaped for st.markdown and friends: shown exactly as typed, never a link; its line
    breaks (a comment's) as spaces."""
    text = as_line(_AUTOLINK.sub(_JOINER, str(text)))
    return "".join(f"&#{ord(char)};" if char in _SPECIAL else char for char in text)


def counted(names) -> str:
    """How many photos and videos `names` are: "1 photo", "2 photos and 1 video", "0 photos"."""
    names = list(names)
    videos = sum(1 for name in names if is_video(name))
    parts = [f"{count} {word}{'' if count == 1 else 's'}"
             for count, word in ((len(names) - videos, "photo"), (videos, "video")) if count]
    return " and ".join(parts) or "0 photos"
