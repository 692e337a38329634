"""User text shown as text: queries, video names, quotes and error messages that echo them.

Streamlit's ``st.markdown`` (and ``st.info``/``st.warning``/``st.error``/``st.caption``, which
render markdown too) would turn ``**x** [login here](https://evil.example)`` into bold text and a
clickable link, and a name with ``<b>`` or a right-to-left override (U+202E) would be drawn as
something it is not. Pages pass every piece of user text through ``md_text`` before putting it in
a markdown string; widgets that show plain text (``st.text``, ``st.code``, dataframe cells) get
``plain_text``.

* ``plain_text(s)``: bidi controls (overrides, embeddings, isolates, marks) and other invisible
  format/control characters removed, newlines folded to spaces, length capped.
* ``md_text(s)``: ``plain_text`` plus every markdown/HTML metacharacter backslash-escaped, so the
  text renders literally (Streamlit does not render raw HTML without ``unsafe_allow_html``; ``<``
  and ``&`` are escaped as entities anyway).
"""
from __future__ import annotations

import re
import unicodedata

#: Bidirectional controls: LRE RLE PDF LRO RLO (U+202A-E), LRI RLI FSI PDI (U+2066-9), LRM RLM
#: ALM. They reorder what is drawn (``exe.mp4`` shown for ``4pm.exe``), so they never survive.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")

#: Characters markdown (CommonMark + GitHub extensions Streamlit uses) gives a meaning to anywhere
#: in a line. ``_`` only matters at a word's edge (``DATABASE_URL`` is plain), ``:`` only before a
#: letter (``:material/x:`` icons, ``:smile:`` emoji), block markers only at the start.
_MD_SPECIAL = re.compile(r"([\\`*\[\]()!|~>$])|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])|:(?=[A-Za-z])")
_MD_BLOCK_START = re.compile(r"^(\s*)(?:([#+\-=])|(\d+)(?=\.(?:\s|$)))")

DEFAULT_MAX_CHARS = 500


def strip_bidi(s: str) -> str:
    """``s`` without bidirectional control characters."""
    return "".join(c for c in s if c not in BIDI_CONTROLS)


def plain_text(s: object, max_chars: int | None = DEFAULT_MAX_CHARS) -> str:
    """One line of visible text: bidi controls and other control/format characters removed
    (zero-width joiners kept: they are part of emoji), whitespace runs folded to one space, cut
    to ``max_chars`` with an ellipsis."""
    text = "" if s is None else str(s)
    out = []
    for c in text:
        if c in BIDI_CONTROLS:
            continue
        cat = unicodedata.category(c)
        if c in "\t\n\r\v\f" or cat in ("Zl", "Zp"):
            out.append(" ")
        elif cat == "Cc" or (cat == "Cf" and c not in "\u200c\u200d"):
            continue
        else:
            out.append(c)
    text = " ".join("".join(out).split())
    if max_chars is not None and len(text) > max_chars:
        text = text[: max(0, max_chars - 1)] + "…"
    return text


def md_text(s: object, max_chars: int | None = DEFAULT_MAX_CHARS) -> str:
    """``s`` as literal text inside a Streamlit markdown string (no bold, links, headings,
    lists, code, HTML, math or emoji shortcodes)."""
    text = plain_text(s, max_chars)
    text = text.replace("&", "&amp;").replace("<", "&lt;")
    text = _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), text)
    # A leading "#", "-", "+", "=" or "1." would make a heading or a list.
    return _MD_BLOCK_START.sub(lambda m: m.group(1) + ("\\" + m.group(2) if m.group(2)
                                                       else m.group(3) + "\\"), text)


def redact_secrets(s: object) -> str:
    """``s`` without connection-string passwords (URL ``user:pw@``, ``?password=``, key=value
    ``password=``): for messages that may quote a ``DATABASE_URL``."""
    from db.connection import redact

    return redact("" if s is None else str(s))


def error_text(e: BaseException | str, max_chars: int | None = DEFAULT_MAX_CHARS) -> str:
    """An error for a page: secrets redacted, shown as literal text (markdown-escaped)."""
    return md_text(redact_secrets(e), max_chars)


__all__ = ["BIDI_CONTROLS", "error_text", "md_text", "plain_text", "redact_secrets", "strip_bidi"]
