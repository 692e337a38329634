"""services/search/search.py: hybrid (HNSW + full text, RRF) search over stored events, with the real
MiniLM embedder and a real PostgreSQL. Events here are built by hand in the shapes the engine
produces; the end-to-end search over analysed dev clips is in test_ingest.py (slow)."""
from __future__ import annotations

import pytest

from db import store
from pipeline.records import Action, AgeGroup, Colour, Event, EventType, Gender
from db.records import SearchFilters
from services import database
from services.search.embeddings import embed_texts, event_sentence, load_embedder
from services.errors import QueryError
from services.search.search import MAX_QUERY_CHARS, clean_query, hit_json, search

pytestmark = pytest.mark.db


@pytest.fixture(scope="module")
def embedder():
    import torch

    torch.set_num_threads(1)
    from settings import Settings

    return load_embedder(Settings())


def ev(t, et, action, gender=Gender.MALE, age=35.0, x=100.0, obj=1, scene=None):
    return Event(event_type=et, t_s=t, frame_number=int(t * 25), obj_id=obj,
                 xyxy=(x, 50.0, x + 80, 300.0), age_group=AgeGroup.from_age(age), gender=gender,
                 action=action, confidence=0.8, age=age, orientation_deg=0.0,
                 scene_description=scene)


def store_video(settings, embedder, name, events, width=640):
    sentences = [event_sentence(e, (width, 480)) for e in events]
    vecs = embed_texts(embedder, sentences)
    with database.pooled(settings) as conn:
        vid = store.create_video(conn, name, f"/videos/{name}")
        store.replace_events(conn, vid, store.EventBatch(events, sentences, [None] * len(events),
                                                         vecs, embedder.name))
    return vid


@pytest.fixture
def corpus(db_settings, embedder):
    walk = "3 people on a campus path: 3 walking"
    fall = store_video(db_settings, embedder, "Fall01.mp4", [
        ev(1.0, EventType.PERSON, Action.WALKING, scene="one person in a room: walking"),
        ev(2.0, EventType.PERSON, Action.WALKING),
        ev(4.2, EventType.FALLING, Action.FALLING),
        ev(5.0, EventType.PERSON, Action.LYING),
        ev(8.0, EventType.COLLAPSE, Action.LYING),
    ])
    fight = store_video(db_settings, embedder, "fi001.mp4", [
        ev(0.5, EventType.PERSON, Action.STANDING, obj=1), ev(0.5, EventType.PERSON, Action.STANDING, obj=2),
        ev(1.2, EventType.VIOLENT, Action.VIOLENT, obj=1), ev(1.3, EventType.PERSON, Action.VIOLENT, obj=2),
    ])
    ped = store_video(db_settings, embedder, "vtest_first20s.mp4", [
        ev(float(t), EventType.PERSON, Action.WALKING, gender=g, obj=t % 5, scene=walk)
        for t, g in zip(range(0, 20), [Gender.MALE, Gender.FEMALE] * 10)])
    return {"fall": fall, "fight": fight, "ped": ped}


def test_falls_and_fights_rank_first(db_settings, embedder, corpus):
    hits = search("a person falls down", top_k=5, settings=db_settings, embedder=embedder)
    assert hits[0].event.video_id == corpus["fall"]
    assert hits[0].event.event_type in ("falling", "collapse")
    fights = search("people fighting", top_k=3, settings=db_settings, embedder=embedder)
    assert any(h.event.video_id == corpus["fight"] and h.event.event_type == "violent" for h in fights)
    assert fights[0].score >= fights[-1].score


def test_filters_restrict_hits(db_settings, embedder, corpus):
    hits = search("someone walking", SearchFilters(video_ids=(corpus["ped"],), genders=("female",),
                                                  t_min_s=5, t_max_s=10),
                  top_k=20, settings=db_settings, embedder=embedder)
    assert hits and all(h.event.video_id == corpus["ped"] and h.event.gender == "female"
                        and 5 <= h.event.t_s <= 10 for h in hits)
    none = search("a person falls down", SearchFilters(event_types=("violent",)), top_k=5,
                  settings=db_settings, embedder=embedder)
    assert all(h.event.event_type == "violent" for h in none)


@pytest.mark.parametrize("q", [
    "'; DROP TABLE db_event; --", "<script>alert(1)</script> fall", "fall) OR 1=1 --",
    "%(text)s {x} $1 \\ \" ' & | ! :*", "a\x00b\x07c falls",
])
def test_sql_and_html_in_query_are_text(db_settings, embedder, corpus, q):
    hits = search(q, top_k=5, settings=db_settings, embedder=embedder)
    assert isinstance(hits, list)
    with database.pooled(db_settings) as conn:
        assert conn.execute("SELECT count(*) FROM db_event").fetchone()[0] == 29


def test_empty_and_long_queries_are_refused(db_settings, embedder):
    for q in ("", "   ", "\n\t"):
        with pytest.raises(QueryError, match="empty"):
            search(q, settings=db_settings, embedder=embedder)
    with pytest.raises(QueryError, match=f"10000 characters; the limit is {MAX_QUERY_CHARS}"):
        search("fall " * 2000, settings=db_settings, embedder=embedder)
    with pytest.raises(QueryError, match="top-k"):
        search("fall", top_k=0, settings=db_settings, embedder=embedder)
    assert clean_query("  a\x00b  c ") == "a b c"


def test_hit_json_fields(db_settings, embedder, corpus):
    import json

    h = search("a person falls down", top_k=1, settings=db_settings, embedder=embedder)[0]
    d = json.loads(hit_json(h))
    assert {"event_id", "video", "timestamp", "event_type", "action", "score", "frame_key",
            "object_class", "relations"} <= set(d)
    assert d["video"] == "Fall01.mp4" and d["object_class"] is None and d["relations"] == []


def test_vectors_of_another_model_are_not_compared(db_settings, embedder, corpus):
    class Other:
        name, dim = "other-model", 384

        def embed(self, texts):
            raise AssertionError("must not embed: no vectors of this model are stored")

    hits = search("fall", top_k=5, settings=db_settings, embedder=Other())
    assert hits and all(h.similarity is None and h.lexical_rank for h in hits)


# --- clothing colours and the query's understood terms ----------------------------------------

def dressed(t, action, gender, obj, upper=Colour.UNKNOWN, lower=Colour.UNKNOWN):
    import dataclasses

    return dataclasses.replace(ev(t, EventType.PERSON, action, gender=gender, obj=obj,
                                  x=60.0 * obj), upper_colour=upper, lower_colour=lower)


@pytest.fixture
def lobby(db_settings, embedder):
    rows = []
    for i in range(4):
        t = float(i)
        rows += [dressed(t, Action.STANDING, Gender.MALE, 1, Colour.RED, Colour.BLUE),
                 dressed(t, Action.STANDING, Gender.FEMALE, 2, Colour.RED),
                 dressed(t, Action.STANDING, Gender.MALE, 3, Colour.BLUE, Colour.BLACK),
                 dressed(t, Action.SITTING, Gender.FEMALE, 4, Colour.GREY),
                 dressed(t, Action.WALKING, Gender.MALE, 5, Colour.WHITE, Colour.RED)]
    rows += [dressed(10.0 + i, Action.STANDING, Gender.MALE, 6 + i % 3) for i in range(12)]
    # decoys: standing people whose scene has the query's words ("seated area")
    import dataclasses

    rows += [dataclasses.replace(dressed(20.0 + i, Action.STANDING, Gender.UNKNOWN, 9),
                                 scene_description="a seated area: a person by the seats")
             for i in range(6)]
    return store_video(db_settings, embedder, "lobby.mp4", rows)


def test_colours_are_stored_and_filter_events(db_settings, embedder, lobby):
    from db import queries

    with database.pooled(db_settings) as conn:
        red_up = queries.list_events(conn, SearchFilters(upper_colours=("red",)))
        blue_low = queries.list_events(conn, SearchFilters(lower_colours=(Colour.BLUE,)))
        blue_any = queries.list_events(conn, SearchFilters(colours=("blue",)))
        plain = queries.list_events(conn, SearchFilters(genders=("male",), t_min_s=10))
    assert {e.obj_id for e in red_up} == {1, 2}
    assert all(e.upper_colour is Colour.RED for e in red_up)
    assert {e.obj_id for e in blue_low} == {1}
    assert {e.obj_id for e in blue_any} == {1, 3}
    assert plain and all(e.upper_colour is Colour.UNKNOWN for e in plain)  # stored as NULL
    assert "red top (jacket, shirt) and blue trousers" in red_up[0].sentence or \
        red_up[0].obj_id == 2
    hits = search("someone standing", SearchFilters(lower_colours=("blue",)), top_k=10,
                  settings=db_settings, embedder=embedder)
    assert hits and all(h.event.obj_id == 1 for h in hits)
    with pytest.raises(ValueError, match="Colour"):
        SearchFilters(upper_colours=("mauve",))


def test_understood_terms_rank_matching_people_first(db_settings, embedder, lobby):
    hits = search("a man in a red jacket", top_k=4, settings=db_settings, embedder=embedder)
    assert [h.event.obj_id for h in hits] == [1, 1, 1, 1]  # never the woman in red (2)
    assert all(h.terms_matched == 1.0 for h in hits)
    seated = search("a seated person", top_k=4, settings=db_settings, embedder=embedder)
    assert {h.event.obj_id for h in seated} == {4}  # never the standing decoys
    literal = search("a seated person", top_k=4, settings=db_settings, embedder=embedder,
                     understand=False)
    assert all(h.terms_matched is None for h in literal)
    assert literal[0].event.obj_id == 9  # the words alone find the decoy's "seated area"
    # the boost never removes the words' own matches: a query with no known terms is unchanged
    party = search("people dancing at a party", top_k=5, settings=db_settings, embedder=embedder)
    assert party and [h.event.event_id for h in party] == [
        h.event.event_id for h in search("people dancing at a party", top_k=5,
                                         settings=db_settings, embedder=embedder,
                                         understand=False)]


def test_cli_prints_the_understood_terms_and_literal_turns_them_off(db_settings, embedder, lobby,
                                                                    monkeypatch, capsys):
    import json

    from services.cli import main

    monkeypatch.setenv("DATABASE_URL", db_settings.database_url)
    monkeypatch.setenv("VA_DATA_DIR", str(db_settings.data_dir))
    assert main(["search", "a man in a red jacket", "--top-k", "3", "--no-answer"]) == 0
    out = capsys.readouterr().out.splitlines()
    hits = [json.loads(line) for line in out[:-1]]
    assert [h["upper_colour"] for h in hits] == ["red"] * 3 and hits[0]["terms_matched"] == 1.0
    assert out[-1] == "understood: gender: male; upper body: red"
    assert main(["search", "a man in a red jacket", "--top-k", "3", "--no-answer",
                 "--literal"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "understood: off (--literal)"
    assert all(json.loads(line)["terms_matched"] is None for line in out[:-1])


def test_understood_terms_filter_and_nothing_named_returns_nothing(db_settings, embedder, lobby):
    """What the query names unambiguously filters: a sitter is never a walker, a colour nobody
    wears returns nothing (the words alone would list the nearest people anyway)."""
    walking = search("someone walking", top_k=10, settings=db_settings, embedder=embedder)
    assert walking and all(h.event.action is Action.WALKING for h in walking)
    assert search("a man in a green jacket", top_k=10, settings=db_settings, embedder=embedder) == []
    assert search("a man in a green jacket", top_k=10, settings=db_settings, embedder=embedder,
                  understand=False)


# --- objects and person-object relations ------------------------------------------------------

def test_objects_and_relations_are_stored_filter_and_rank(db_settings, embedder):
    import dataclasses

    from db import queries
    from pipeline.records import ObjectClass, ObjectRelation, Relation

    def with_objects(e, *rels):
        return dataclasses.replace(e, relations=tuple(ObjectRelation(r, c) for r, c in rels))

    def obj(t, cls, oid, x):
        return dataclasses.replace(ev(t, EventType.OBJECT, Action.UNKNOWN, Gender.UNKNOWN, None,
                                      x=x, obj=oid), object_class=cls, start_t_s=t, end_t_s=t + 5)

    rows = []
    for i in range(3):
        t = float(i)
        rows += [with_objects(ev(t, EventType.PERSON, Action.WALKING, obj=1, x=10),
                              (Relation.CARRYING, ObjectClass.BACKPACK)),
                 with_objects(ev(t, EventType.PERSON, Action.WALKING, obj=2, x=150),
                              (Relation.RIDING, ObjectClass.BICYCLE)),
                 with_objects(ev(t, EventType.PERSON, Action.SITTING, obj=3, x=300),
                              (Relation.SITTING_ON, ObjectClass.BENCH)),
                 ev(t, EventType.PERSON, Action.SITTING, obj=4, x=450),
                 ev(t, EventType.PERSON, Action.WALKING, obj=5, x=500)]
    rows += [obj(0.0, ObjectClass.BICYCLE, 10001, 150), obj(0.0, ObjectClass.BENCH, 10002, 300),
             obj(0.0, ObjectClass.CAR, 10003, 550)]
    store_video(db_settings, embedder, "street.mp4", rows)
    with database.pooled(db_settings) as conn:
        bikes = queries.list_events(conn, SearchFilters(object_classes=("bicycle",)))
        riders = queries.list_events(conn, SearchFilters(relations=("riding",)))
        cars = queries.list_events(conn, SearchFilters(object_classes=(ObjectClass.CAR,)))
    assert {e.obj_id for e in bikes} == {2, 10001}  # the rider and the bicycle's own track
    assert {e.obj_id for e in riders} == {2}
    assert [e.event_type for e in cars] == [EventType.OBJECT]
    assert cars[0].object_class is ObjectClass.CAR and "a car (vehicle) was seen" in cars[0].sentence
    rider = next(e for e in bikes if e.obj_id == 2)
    assert rider.relations == (ObjectRelation(Relation.RIDING, ObjectClass.BICYCLE),)
    assert "riding a bicycle (bike)" in rider.sentence
    with pytest.raises(ValueError, match="ObjectClass"):
        SearchFilters(object_classes=("spaceship",))

    def top(q, k=3):
        return [h.event.obj_id for h in search(q, top_k=k, settings=db_settings,
                                                 embedder=embedder)]

    assert top("someone with a backpack") == [1, 1, 1]
    assert top("a person on a bike") == [2, 2, 2]
    assert top("a man sitting on a bench") == [3, 3, 3]
    assert top("a woman sitting on a bench") == []  # every sitter here is a man
    assert set(top("someone sitting on a chair", 6)) <= {3, 4}  # sitting people first
