"""services/search/query_terms.py: the query's words in the engine's vocabulary, by table."""
from __future__ import annotations

import pytest

from db.records import SearchFilters
from pipeline.records import Action, AgeGroup, Colour, EventType, Gender, ObjectClass, Relation
from services.search.query_terms import parse_query

A, E, G, Y, C = Action, EventType, Gender, AgeGroup, Colour

# query -> (actions, event types, genders, age groups, upper, lower, either colour)
TABLE = [
    ("someone sitting on a chair", ((A.SITTING,), (), (), (), (), (), ())),
    ("a seated woman", ((A.SITTING,), (), (G.FEMALE,), (), (), (), ())),
    ("the woman sat down on the bench", ((A.SITTING,), (), (G.FEMALE,), (), (), (), ())),
    ("a man in a red jacket", ((), (), (G.MALE,), (), (C.RED,), (), ())),
    ("guy wearing a navy t-shirt", ((), (), (G.MALE,), (), (C.BLUE,), (), ())),
    ("girl in a t shirt that is green", ((), (), (G.FEMALE,), (Y.YOUNG,), (), (), (C.GREEN,))),
    ("a woman in blue jeans and a white shirt",
     ((), (), (G.FEMALE,), (), (C.WHITE,), (C.BLUE,), ())),
    ("grey trousers", ((), (), (), (), (), (C.GREY,), ())),
    ("gray skirt", ((), (), (), (), (), (C.GREY,), ())),
    ("someone in red", ((), (), (), (), (), (), (C.RED,))),
    ("kids fighting", ((), (E.VIOLENT,), (), (Y.YOUNG,), (), (), ())),
    ("a brawl", ((), (E.VIOLENT,), (), (), (), (), ())),
    ("an elderly man fell down", ((), (E.FALLING,), (G.MALE,), (Y.OLD,), (), (), ())),
    ("a person lying down", ((A.LYING,), (), (), (), (), (), ())),
    ("people walking and running", ((A.WALKING, A.RUNNING), (), (), (), (), (), ())),
    ("shoplifting", ((), (E.THEFT,), (), (), (), (), ())),
    ("a person on a bike", ((), (), (), (), (), (), ())),
    ("snow on mountains", ((), (), (), (), (), (), ())),
]


@pytest.mark.parametrize("query,expect", TABLE, ids=[q for q, _ in TABLE])
def test_query_vocabulary(query, expect):
    t = parse_query(query)
    got = (t.actions, t.event_types, t.genders, t.age_groups, t.upper_colours,
           t.lower_colours, t.colours)
    assert got == expect


def test_understood_words_and_their_description():
    t = parse_query("A man in a RED leather jacket, seated")
    assert t.words == ("man", "red jacket", "seated")
    assert t.describe() == "understood: action: sitting; gender: male; upper body: red"
    assert parse_query("a spaceship").describe() == "understood: no known terms"
    assert parse_query("a spaceship").empty and not t.empty


def test_terms_become_search_filters_of_the_engine_vocabularies():
    f = parse_query("a woman in blue jeans falls").as_filters()
    assert isinstance(f, SearchFilters)
    assert f.genders == (G.FEMALE,) and f.lower_colours == (C.BLUE,)
    assert f.event_types == (E.FALLING,) and f.video_ids == ()


O, R = ObjectClass, Relation
OBJECT_TABLE = [
    ("someone with a backpack", (O.BACKPACK,), (), ()),
    ("a bag", (O.HANDBAG, O.BACKPACK, O.SUITCASE), (), ()),
    ("a person on a bike", (O.BICYCLE,), (R.RIDING,), ()),
    ("a cyclist", (O.BICYCLE,), (R.RIDING,), ()),
    ("a man riding a motorbike", (O.MOTORCYCLE,), (R.RIDING,), ()),
    ("someone sitting on a chair", (O.CHAIR,), (R.SITTING_ON,), (A.SITTING,)),
    ("the woman sitting on the bench", (O.BENCH,), (R.SITTING_ON,), (A.SITTING,)),
    ("a man seated on a sofa", (O.COUCH,), (R.SITTING_ON,), (A.SITTING,)),
    ("a woman carrying a suitcase", (O.SUITCASE,), (R.CARRYING,), ()),
    ("a man sitting on a bed", (O.BED,), (), (A.SITTING,)),  # no relation the engine sees
    ("a white van parked by the building", (O.CAR, O.TRUCK), (), ()),
    ("people sitting at tables", (), (), (A.SITTING,)),
    # a thing on a seat is not a person sitting on it
    ("a cat sleeping on a sofa", (O.CAT, O.COUCH), (), ()),
    ("a bag on a bench", (O.HANDBAG, O.BACKPACK, O.SUITCASE, O.BENCH), (), ()),
]


@pytest.mark.parametrize("query,classes,relations,actions", OBJECT_TABLE,
                         ids=[q for q, *_ in OBJECT_TABLE])
def test_objects_and_relations(query, classes, relations, actions):
    t = parse_query(query)
    assert (t.object_classes, t.relations, t.actions) == (classes, relations, actions)
    f = t.as_filters()
    assert (f.object_classes, f.relations) == (classes, relations)


def test_objects_are_described():
    assert parse_query("a person on a bike").describe() == (
        "understood: object: bicycle; relation: riding")


def _ev(**kw):
    from conftest import make_stored_event

    return make_stored_event(**kw)


def test_understood_terms_decide_which_events_match():
    """``QueryTerms.matches``: what search keeps. A sitter never answers "walking"; an action
    or an incident named together is either one; unknown gender does not contradict; a colour
    or an object named alone must be there; a relation only ranks."""
    sit = _ev(action="sitting", gender="female")
    walk = _ev(action="walking", gender="male", upper_colour=Colour.RED)
    fall = _ev(event_type="falling", action="falling", gender="unknown")
    assert parse_query("someone sitting").matches(sit)
    assert not parse_query("someone sitting").matches(walk)
    assert parse_query("a woman walking then falling").matches(fall)
    assert not parse_query("a woman walking then falling").matches(walk)  # a man
    assert parse_query("a man in a red jacket").matches(walk)
    assert not parse_query("a man in a green jacket").matches(walk)
    assert not parse_query("someone in red").matches(sit)  # colour unknown: not red
    assert not parse_query("a person with a bicycle").matches(walk)  # an object named alone
    assert parse_query("a person riding a bicycle").matches(walk)  # a relation only ranks
    assert parse_query("a car").matches(_ev(event_type="object", action="unknown",
                                            object_class=ObjectClass.CAR, gender="unknown"))
    assert parse_query("people dancing at a party").matches(walk)  # nothing understood
    van = _ev(event_type="object", action="unknown", object_class=ObjectClass.TRUCK,
              gender="unknown")
    assert parse_query("a white van").matches(van)  # objects have no colour reading
