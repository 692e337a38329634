"""services/search/answer.py: cited answers from hits (extractive and LLM with citation checks), and
'nothing matches' when nothing is relevant."""
from __future__ import annotations

import re

import pytest

from pipeline.records import ChatReply
from services.search.answer import answer, extractive_answer, validate_llm_answer
from services.search.search import search
from test_search import corpus, embedder  # noqa: F401  (fixtures)

pytestmark = pytest.mark.db


class FakeChat:
    """A chat model at the boundary: returns a fixed reply and records the prompt."""

    name = "fake-llm"

    def __init__(self, text):
        self.text, self.calls = text, []

    def complete(self, system, user):
        self.calls.append((system, user))
        return ChatReply(self.text, input_tokens=120, output_tokens=30)


def test_extractive_answer_cites_every_claim(db_settings, embedder, corpus):
    hits = search("a person falls down", top_k=5, settings=db_settings, embedder=embedder)
    a = answer("a person falls down", hits, settings=db_settings)
    assert a.relevant and a.source == "extractive" and a.citations
    first = a.citations[0]
    assert first.video_name == "Fall01.mp4" and f"[event {first.event_id}, Fall01.mp4 00:0" in a.text
    # every sentence after the heading carries a citation
    for sentence in re.split(r"(?<=\])\.\s*", a.text.split(": ", 1)[1]):
        if sentence.strip():
            assert re.search(r"\[event \d+, .+ \d\d:\d\d\]", sentence), sentence


@pytest.mark.parametrize("q", ["a dog swimming in a pool", "a red sports car on a motorway",
                               "snow falling on mountains at night"])
def test_absent_things_answer_nothing_matches(db_settings, embedder, corpus, q):
    hits = search(q, top_k=5, settings=db_settings, embedder=embedder)
    a = answer(q, hits, settings=db_settings)
    assert not a.relevant and "Nothing in the analysed videos matches" in a.text
    assert a.citations == ()


def test_llm_answer_citations_are_checked(db_settings, embedder, corpus):
    hits = search("a person falls down", top_k=5, settings=db_settings, embedder=embedder)
    good_id = hits[0].event.event_id
    chat = FakeChat(f"A man fell to the floor at 00:04 [event {good_id}].")
    a = answer("a person falls down", hits, settings=db_settings, chat=chat)
    assert a.source == "fake-llm" and a.citations[0].event_id == good_id
    assert f"[event {good_id}, Fall01.mp4 00:04]" in a.text and a.input_tokens == 120
    assert f"[event {good_id}]" in chat.calls[0][1]  # the prompt lists the hits with their ids

    invented = FakeChat("A man fell [event 999999]. He got up.")
    b = answer("a person falls down", hits, settings=db_settings, chat=invented)
    assert b.source == "extractive" and "999999" not in b.text and b.citations

    uncited = FakeChat(f"A man fell [event {good_id}]. Then he walked home.")
    assert answer("a person falls down", hits, settings=db_settings, chat=uncited).source == "extractive"

    nomatch = FakeChat("NO_MATCH")
    assert not answer("a person falls down", hits, settings=db_settings, chat=nomatch).relevant


def test_llm_failure_falls_back(db_settings, embedder, corpus):
    class Broken:
        name = "broken"

        def complete(self, system, user):
            raise TimeoutError("read timed out")

    hits = search("people fighting", top_k=3, settings=db_settings, embedder=embedder)
    a = answer("people fighting", hits, settings=db_settings, chat=Broken())
    assert a.relevant and a.source == "extractive" and "fi001.mp4" in a.text


def test_validate_llm_answer_unit():
    assert validate_llm_answer("", []) is None
    assert extractive_answer("x", []).relevant is False


def test_per_frame_rows_of_one_moment_are_one_claim(db_settings, embedder):
    """The falling rows of one person a few samples apart are one moment with all its events
    cited, not one sentence each; another person's fall stays a claim of its own."""
    from test_search import ev, store_video
    from pipeline.records import Action, EventType

    store_video(db_settings, embedder, "hall.mp4", [
        ev(t, EventType.PERSON, Action.FALLING, obj=7) for t in (4.2, 4.4, 4.6, 4.8)
    ] + [ev(30.0, EventType.PERSON, Action.FALLING, obj=8, x=400.0)])
    hits = search("a person falls down", top_k=10, settings=db_settings, embedder=embedder,
                  filters=None)
    hits = [h for h in hits if h.video_name == "hall.mp4"]
    a = answer("a person falls down", hits, settings=db_settings)
    claims = [int(c) for c in re.findall(r"\[event (\d+), ", a.text)]
    assert len(claims) == 2 and a.text.startswith("2 matching moments")
    assert len(a.citations) == 5  # every row is still cited
    assert "same moment: events" in a.text
