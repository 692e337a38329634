"""What a search query says in the engine's vocabulary: actions, incident types, gender, age
group and clothing colours (upper or lower body), recognised from words and synonyms by tables.
Pure functions; ``db.queries.hybrid_search`` ranks the events that match what was understood
first (a boost), and the Search page and the CLI show it.

"a man in a red jacket" -> gender male, upper body red; "someone seated" -> action sitting;
"kids fighting" -> age group young, incident violent. Colour words bind to the garment named
within ``GARMENT_WINDOW`` words after them ("red leather jacket"); a colour with no garment may
be either part ("someone in red")."""
from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.object_records import relation_tokens
from pipeline.records import (
    RELATION_CLASSES, Action, AgeGroup, Colour, EventType, Gender, ObjectClass, Relation,
)

GARMENT_WINDOW = 3

#: Words (lower case, singular and plural) -> the action they mean.
ACTION_WORDS: dict[str, Action] = {
    **dict.fromkeys(("sitting", "sit", "sits", "sat", "seated", "sitting down", "sit down",
                     "sat down"), Action.SITTING),
    **dict.fromkeys(("standing", "stand", "stands", "stood", "standing still"), Action.STANDING),
    **dict.fromkeys(("walking", "walk", "walks", "walked", "strolling", "pedestrian",
                     "pedestrians"), Action.WALKING),
    **dict.fromkeys(("running", "run", "runs", "ran", "jogging", "sprinting"), Action.RUNNING),
    **dict.fromkeys(("lying", "lie", "lies", "lay", "laying", "lying down", "laid"),
                    Action.LYING),
    **dict.fromkeys(("reaching", "reach", "reaches", "grabbing", "grab", "grabs",
                     "grabbed"), Action.GRABBING),
    **dict.fromkeys(("paying", "pay", "pays", "paid"), Action.PAYING),
}

#: Words -> the incident (event type) they name; each also matches its people's action.
EVENT_WORDS: dict[str, EventType] = {
    **dict.fromkeys(("fall", "falls", "fell", "falling", "fallen", "fall down", "falls down",
                     "fell down", "tripped", "slipped"), EventType.FALLING),
    **dict.fromkeys(("collapse", "collapsed", "collapses", "collapsing", "unconscious",
                     "passed out"), EventType.COLLAPSE),
    **dict.fromkeys(("fight", "fights", "fighting", "fought", "violent", "violence", "brawl",
                     "punch", "punching", "punched", "hitting", "kicking", "assault", "attack",
                     "attacking", "scuffle"), EventType.VIOLENT),
    **dict.fromkeys(("theft", "steal", "stealing", "stole", "shoplifting", "shoplifter",
                     "thief"), EventType.THEFT),
    **dict.fromkeys(("anomaly", "unusual", "suspicious", "strange"), EventType.ANOMALY),
}
_EVENT_ACTION = {EventType.FALLING: Action.FALLING, EventType.VIOLENT: Action.VIOLENT,
                 EventType.THEFT: Action.THEFT, EventType.ANOMALY: Action.ANOMALY,
                 EventType.COLLAPSE: Action.LYING}

GENDER_WORDS: dict[str, Gender] = {
    **dict.fromkeys(("man", "men", "male", "males", "guy", "guys", "gentleman", "boy", "boys",
                     "he", "him", "his"), Gender.MALE),
    **dict.fromkeys(("woman", "women", "female", "females", "lady", "ladies", "girl", "girls",
                     "she", "her"), Gender.FEMALE),
}

AGE_WORDS: dict[str, AgeGroup] = {
    **dict.fromkeys(("kid", "kids", "child", "children", "boy", "boys", "girl", "girls",
                     "young", "teen", "teens", "teenager", "teenagers", "youth", "student",
                     "students"), AgeGroup.YOUNG),
    **dict.fromkeys(("middle-aged", "middle aged", "adult", "adults"), AgeGroup.MIDDLE),
    **dict.fromkeys(("elderly", "old", "older", "senior", "seniors", "aged", "pensioner",
                     "grandmother", "grandfather"), AgeGroup.OLD),
}

COLOUR_WORDS: dict[str, Colour] = {
    **{c.value: c for c in Colour if c is not Colour.UNKNOWN},
    "gray": Colour.GREY, "navy": Colour.BLUE, "dark blue": Colour.BLUE,
    "light blue": Colour.BLUE, "maroon": Colour.RED, "crimson": Colour.RED,
    "beige": Colour.BROWN, "tan": Colour.BROWN, "khaki": Colour.BROWN,
    "violet": Colour.PURPLE, "lilac": Colour.PURPLE, "magenta": Colour.PINK,
    "olive": Colour.GREEN, "teal": Colour.BLUE, "turquoise": Colour.BLUE,
    "silver": Colour.GREY, "golden": Colour.YELLOW,
}

_O = ObjectClass
#: Words -> the object classes they name (a person with one, or the object's own track).
OBJECT_WORDS: dict[str, tuple[ObjectClass, ...]] = {
    **dict.fromkeys(("bicycle", "bicycles", "bike", "bikes", "cyclist", "cyclists",
                     "cycle"), (_O.BICYCLE,)),
    **dict.fromkeys(("motorcycle", "motorcycles", "motorbike", "motorbikes", "scooter",
                     "moped"), (_O.MOTORCYCLE,)),
    **dict.fromkeys(("car", "cars"), (_O.CAR,)),
    **dict.fromkeys(("van", "vans", "vehicle", "vehicles"), (_O.CAR, _O.TRUCK)),
    **dict.fromkeys(("truck", "trucks", "lorry", "lorries"), (_O.TRUCK,)),
    **dict.fromkeys(("bus", "buses"), (_O.BUS,)),
    **dict.fromkeys(("bag", "bags"), (_O.HANDBAG, _O.BACKPACK, _O.SUITCASE)),
    **dict.fromkeys(("handbag", "handbags", "purse", "shoulder bag"), (_O.HANDBAG,)),
    **dict.fromkeys(("backpack", "backpacks", "rucksack", "rucksacks"), (_O.BACKPACK,)),
    **dict.fromkeys(("suitcase", "suitcases", "luggage", "trolley bag"), (_O.SUITCASE,)),
    **dict.fromkeys(("umbrella", "umbrellas"), (_O.UMBRELLA,)),
    **dict.fromkeys(("chair", "chairs"), (_O.CHAIR,)),
    **dict.fromkeys(("bench", "benches"), (_O.BENCH,)),
    **dict.fromkeys(("sofa", "sofas", "couch", "couches"), (_O.COUCH,)),
    **dict.fromkeys(("bed", "beds"), (_O.BED,)),
    **dict.fromkeys(("dog", "dogs", "puppy"), (_O.DOG,)),
    **dict.fromkeys(("cat", "cats"), (_O.CAT,)),
    **dict.fromkeys(("phone", "phones", "mobile phone", "cell phone", "cellphone",
                     "smartphone"), (_O.CELL_PHONE,)),
    **dict.fromkeys(("laptop", "laptops"), (_O.LAPTOP,)),
    **dict.fromkeys(("bottle", "bottles"), (_O.BOTTLE,)),
    **dict.fromkeys(("cup", "cups", "mug"), (_O.CUP,)),
    **dict.fromkeys(("knife", "knives"), (_O.KNIFE,)),
    **dict.fromkeys(("skateboard", "skateboards", "skateboarder"), (_O.SKATEBOARD,)),
}
#: Words -> the relation of a person to an object they name.
RELATION_WORDS: dict[str, Relation] = {
    **dict.fromkeys(("riding", "ride", "rides", "rode", "cyclist", "cyclists", "cycling",
                     "skateboarder"), Relation.RIDING),
    **dict.fromkeys(("carrying", "carry", "carries", "carried", "holding", "holds"),
                    Relation.CARRYING),
    **dict.fromkeys(("sitting on", "sits on", "sat on", "seated on", "sit on"),
                    Relation.SITTING_ON),
}
#: The action a relation implies ("sitting on a bench": sitting).
_RELATION_ACTION = {Relation.SITTING_ON: Action.SITTING}

UPPER_GARMENTS = frozenset((
    "jacket", "jackets", "shirt", "shirts", "t-shirt", "t-shirts", "tshirt", "tee", "top", "tops",
    "coat", "coats", "hoodie", "hoodies", "sweater", "sweaters", "jumper", "jumpers", "blouse",
    "blouses", "vest", "vests", "jersey", "cardigan", "polo", "blazer", "parka", "sweatshirt",
    "uniform", "tank top",
))
LOWER_GARMENTS = frozenset((
    "trousers", "pants", "jeans", "skirt", "skirts", "shorts", "leggings", "slacks", "chinos",
    "joggers", "sweatpants",
))

_WORD = re.compile(r"[a-z]+(?:-[a-z]+)?")
_PHRASE_TABLES = (ACTION_WORDS, EVENT_WORDS, GENDER_WORDS, AGE_WORDS, COLOUR_WORDS, OBJECT_WORDS,
                  RELATION_WORDS)
_MAX_PHRASE = max(len(k.split()) for t in _PHRASE_TABLES for k in t)
#: The vocabularies a phrase is looked up in, with the QueryTerms field each one fills (colours,
#: which depend on the garment named after them, are handled apart).
_WORD_TABLES = (("actions", ACTION_WORDS), ("event_types", EVENT_WORDS),
                ("genders", GENDER_WORDS), ("age_groups", AGE_WORDS),
                ("relations", RELATION_WORDS))
_FACETS = ("actions", "event_types", "genders", "age_groups", "upper_colours", "lower_colours",
           "colours", "object_classes", "relations")


@dataclass(frozen=True)
class QueryTerms:
    """The query's words the engine's vocabulary knows, and what they mean."""

    actions: tuple[Action, ...] = ()
    event_types: tuple[EventType, ...] = ()
    genders: tuple[Gender, ...] = ()
    age_groups: tuple[AgeGroup, ...] = ()
    upper_colours: tuple[Colour, ...] = ()
    lower_colours: tuple[Colour, ...] = ()
    colours: tuple[Colour, ...] = ()  # named with no garment: either part
    object_classes: tuple[ObjectClass, ...] = ()
    relations: tuple[Relation, ...] = ()  # carrying, riding, sitting on (with object_classes)
    words: tuple[str, ...] = ()  # the query's words that were understood, in order

    def as_filters(self):
        """The understood terms as a ``SearchFilters`` (what ``hybrid_search`` boosts)."""
        from db.records import SearchFilters

        return SearchFilters(event_types=self.event_types, actions=self.actions,
                             genders=self.genders, age_groups=self.age_groups,
                             upper_colours=self.upper_colours, lower_colours=self.lower_colours,
                             colours=self.colours, object_classes=self.object_classes,
                             relations=self.relations)

    @property
    def empty(self) -> bool:
        return not self.facets()

    def matches(self, event) -> bool:
        """Whether a stored event is what the query names: every kind of thing understood holds
        for it (an action or an incident: either one named, so "walking then falling" matches
        the walk and the fall; an incident also matches its people's action). What the engine
        could not read (gender or age group unknown) does not contradict; a colour must be there
        on a person (objects carry no colour reading, so a colour never rules an object out),
        and an object named alone (the object's own track or a person with one). A relation
        ("carrying", "sitting on") only ranks: the engine sees few (a sitter's chair is hidden
        by the desk). Search keeps only these hits."""
        if self.actions or self.event_types:
            acts = set(self.actions) | {event_action(t) for t in self.event_types}
            if event.action not in acts and event.event_type not in self.event_types:
                return False
        for named, value, unknown in ((self.genders, event.gender, Gender.UNKNOWN),
                                      (self.age_groups, event.age_group, AgeGroup.UNKNOWN)):
            if named and value is not unknown and value not in named:
                return False
        if event.object_class is None:  # colours are read on people only, never on objects
            if self.upper_colours and event.upper_colour not in self.upper_colours:
                return False
            if self.lower_colours and event.lower_colour not in self.lower_colours:
                return False
            if self.colours and not ({event.upper_colour, event.lower_colour}
                                     & set(self.colours)):
                return False
        if self.object_classes and not self.relations:
            tokens = set(relation_tokens(self.object_classes))
            if (event.object_class not in self.object_classes
                    and not tokens & {r.token for r in event.relations}):
                return False
        return True

    def facets(self) -> tuple[str, ...]:
        """The kinds of things understood (each a boost in the ranking)."""
        return tuple(name for name in _FACETS if getattr(self, name))

    def describe(self) -> str:
        """One line for people: "understood: man (gender), red (upper body), sitting (action)"."""
        parts = []
        for label, values in (("action", self.actions), ("incident", self.event_types),
                              ("gender", self.genders), ("age group", self.age_groups),
                              ("upper body", self.upper_colours),
                              ("lower body", self.lower_colours), ("clothing", self.colours),
                              ("object", self.object_classes), ("relation", self.relations)):
            if values:
                parts.append(f"{label}: {', '.join(v.value.replace('_', ' ') for v in values)}")
        return ("understood: " + "; ".join(parts)) if parts else "understood: no known terms"


def _add(bucket: list, value) -> None:
    if value not in bucket:
        bucket.append(value)


def parse_query(text: str) -> QueryTerms:
    """The engine's vocabulary in ``text`` (see the module docstring)."""
    tokens = _WORD.findall((text or "").lower().replace("t shirt", "t-shirt"))
    found: dict[str, list] = {k: [] for k in _FACETS}
    words: list[str] = []
    i = 0
    while i < len(tokens):
        for n in range(min(_MAX_PHRASE, len(tokens) - i), 0, -1):
            phrase = " ".join(tokens[i:i + n])
            hit = False
            for key, table in _WORD_TABLES:
                if phrase in table:
                    _add(found[key], table[phrase])
                    hit = True
            if phrase in COLOUR_WORDS:
                part, garment = _garment_after(tokens, i + n)
                key = {"upper": "upper_colours", "lower": "lower_colours"}.get(part, "colours")
                _add(found[key], COLOUR_WORDS[phrase])
                phrase = f"{phrase} {garment}" if garment else phrase
                hit = True
            if phrase in OBJECT_WORDS:
                # "on a bike", "on the bench": a person's riding or sitting, unless a thing
                # named before is what is on it ("a cat on a sofa", "a bag on a bench")
                on_it = "on" in tokens[max(0, i - 2):i] and not found["object_classes"]
                for c in OBJECT_WORDS[phrase]:
                    _add(found["object_classes"], c)
                if on_it:
                    _add(found["relations"], Relation.RIDING if c in RELATION_CLASSES[
                        Relation.RIDING] else Relation.SITTING_ON)
                hit = True
            if hit:
                words.append(phrase)
                i += n
                break
        else:
            i += 1
    return QueryTerms(**_consistent(found), words=tuple(words))


def _consistent(found: dict[str, list]) -> dict[str, tuple]:
    """Relations only with objects they can hold with ("sitting on a bed": the bed, no relation
    the engine can see), and the action a relation implies (sitting on: sitting)."""
    classes, rels = found["object_classes"], found["relations"]
    for r in rels:
        if r in _RELATION_ACTION:
            _add(found["actions"], _RELATION_ACTION[r])
    if classes:
        rels = [r for r in rels if any(c in RELATION_CLASSES[r] for c in classes)]
        found["object_classes"] = [c for c in classes if not rels
                                   or any(c in RELATION_CLASSES[r] for r in rels)]
    found["relations"] = rels
    return {k: tuple(v) for k, v in found.items()}


def _garment_after(tokens: list[str], start: int) -> tuple[str | None, str | None]:
    """("upper" / "lower", the garment) for the first garment within ``GARMENT_WINDOW`` words
    from ``start`` (stopping at another colour or "and"), else (None, None)."""
    for j in range(start, min(len(tokens), start + GARMENT_WINDOW)):
        tok = tokens[j]
        two = " ".join(tokens[j:j + 2])
        if two in UPPER_GARMENTS:
            return "upper", two
        if tok in UPPER_GARMENTS:
            return "upper", tok
        if tok in LOWER_GARMENTS:
            return "lower", tok
        if tok in COLOUR_WORDS or tok in ("and", "with", "or"):
            break
    return None, None


def event_action(event_type: EventType) -> Action | None:
    """The action the people of an incident type carry (a fight's people: violent)."""
    return _EVENT_ACTION.get(event_type)
