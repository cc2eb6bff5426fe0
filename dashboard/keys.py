"""Keyboard shortcuts for the review page: a key presses the button with that label, unless the
reviewer is typing (a comment, a number). The listener lives in the page (a same-origin
frame of inline HTML reaches it)."""

from __future__ import annotations

import json

import streamlit as st

_SCRIPT = """<script>
const doc = window.parent.document;
// This frame is made anew on every run of the page: the listener of an earlier frame dies with
// it, so each frame replaces it with its own.
if (doc.__faceKeysHandler) doc.removeEventListener('keydown', doc.__faceKeysHandler, true);
const keys = %s;
doc.__faceKeysHandler = (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  if (target && (target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName))) return;
  const labels = [].concat(keys[event.key.length === 1 ? event.key.toLowerCase() : event.key] || []);
  if (!labels.length) return;
  // A label ending in "…" stands for every label that begins with it ("Cover face …").
  const fits = (text, label) => label.endsWith('…') ? text.startsWith(label.slice(0, -1)) : text === label;
  const button = Array.from(doc.querySelectorAll('button')).find(
    (b) => !b.disabled && labels.some((label) => fits(b.innerText.trim(), label)));
  if (button) { event.preventDefault(); event.stopPropagation(); button.click(); }
};
doc.addEventListener('keydown', doc.__faceKeysHandler, true);  // capture: before the page's widgets
</script>"""


def shortcuts(keys: dict[str, str | list[str]], legend: str) -> None:
    """`keys`: key (as KeyboardEvent.key, letters lower case) -> the label of the button it presses
    (or labels, the first button found wins; a label ending in "…" matches its beginning)."""
    st.iframe(_SCRIPT % json.dumps(keys), height=1)  # nothing to show (0 is refused)
    st.caption(legend)
