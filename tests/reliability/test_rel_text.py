"""services/text.py: user text (queries, names, quotes) renders as the same text, never as
markdown, HTML or reordered by bidi controls (issue 10, defect 8)."""
from __future__ import annotations

import pytest
from markdown_it import MarkdownIt

from services.text import BIDI_CONTROLS, md_text, plain_text, strip_bidi

MD = MarkdownIt("commonmark").enable("table").enable("strikethrough")

HOSTILE = [
    "**x** [login here](https://evil.example)",
    "<script>alert(1)</script><b>bold</b>",
    "# heading\n- item\n1. one",
    "`code` ~~gone~~ _em_ > quote",
    "![img](http://evil.example/x.png)",
    "a | b |\n|---|---|\n| c | d |",
    "$x^2$ and :material/error: and &amp; and \\*",
    "<https://evil.example>",
    "report\u202egnp.exe",
    "fall\u2066hidden\u2069 clip.mp4",
    "plain words, nothing special",
]


def _rendered_text(md: str) -> tuple[str, str]:
    """(html, visible text) of ``md`` rendered as CommonMark."""
    import html as _html
    import re

    out = MD.render(md)
    text = _html.unescape(re.sub(r"<[^>]+>", "", out)).strip()
    return out, text


@pytest.mark.parametrize("raw", HOSTILE)
def test_md_text_renders_literally(raw):
    html, text = _rendered_text(md_text(raw))
    assert html.startswith("<p>") and html.count("<") == 2, html  # one paragraph, no other tags
    assert text == plain_text(raw)


@pytest.mark.parametrize("raw", HOSTILE)
def test_no_bidi_control_survives(raw):
    assert not set(md_text(raw)) & BIDI_CONTROLS
    assert not set(plain_text(raw)) & BIDI_CONTROLS


def test_plain_text_folds_lines_and_caps_length():
    assert plain_text("a\nb\r\n\tc\x00d") == "a b cd"
    assert plain_text("x" * 600).endswith("…") and len(plain_text("x" * 600)) == 500
    assert plain_text(None) == ""
    assert strip_bidi("a\u202eb") == "ab"
    assert plain_text("👨\u200d👩\u200d👧") == "👨\u200d👩\u200d👧"  # joiners of emoji stay


@pytest.mark.parametrize("raw", ["DATABASE_URL", "Fall01.mp4 at 0:04.2", "postgresql://h:5/db",
                                 "it's \"quoted\" (1 event)".replace("(", "").replace(")", "")])
def test_md_text_leaves_plain_text_readable(raw):
    """Only what markdown would interpret is escaped, so messages stay greppable."""
    assert md_text(raw) == raw


@pytest.mark.parametrize("raw", ["1. one", "- item", "+ item", "# heading", "= x", "12) x",
                                 "_em_", "__strong__", ":smile: :material/error:"])
def test_md_text_block_and_emphasis_markers(raw):
    html, text = _rendered_text(md_text(raw))
    assert html.startswith("<p>") and html.count("<") == 2, html
    assert text == raw
