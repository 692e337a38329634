"""Default scene describer (``template``): a plain-language sentence built from what was detected
in the frame (how many people, what they do, who they are, where they are in the frame).
No model; the Bedrock/VLM describers implement the same ``SceneDescriber`` Protocol."""
from __future__ import annotations

from collections import Counter
from typing import Sequence

from pipeline.records import AgeGroup, Frame, Gender, PersonObservation, SceneCaption

_PLURAL = {
    "standing": "standing", "walking": "walking", "running": "running", "sitting": "sitting",
    "lying": "lying down", "falling": "falling", "violent": "fighting", "grabbing": "reaching out",
    "anomaly": "behaving unusually", "paying": "paying", "theft": "taking something",
    "unknown": "doing something unclear",
}


def _where(obs: PersonObservation, width: int, height: int) -> str:
    x0, y0, x1, y1 = obs.xyxy
    cx, cy = (x0 + x1) / 2 / max(width, 1), (y0 + y1) / 2 / max(height, 1)
    horiz = "left" if cx < 1 / 3 else ("right" if cx > 2 / 3 else "centre")
    depth = "background" if cy < 0.4 else ("foreground" if cy > 0.7 else "middle")
    return f"{depth} {horiz}" if horiz != "centre" else f"{depth} centre"


def _who(obs: PersonObservation) -> str:
    group = AgeGroup.from_age(obs.age)
    age = {"young": "young ", "middle": "middle-aged ", "old": "older "}.get(group.value, "")
    noun = {Gender.MALE: "man", Gender.FEMALE: "woman"}.get(obs.gender, "person")
    return f"{age}{noun}"


def describe_observations(observations: Sequence[PersonObservation], width: int, height: int) -> str:
    n = len(observations)
    if n == 0:
        return "No people are visible."
    acts = Counter(o.action.value for o in observations)
    act_txt = ", ".join(
        f"{c} {_PLURAL.get(a, a)}" for a, c in sorted(acts.items(), key=lambda kv: (-kv[1], kv[0])))
    head = "One person is visible" if n == 1 else f"{n} people are visible"
    people = []
    for o in sorted(observations, key=lambda o: o.xyxy[0])[:6]:
        people.append(f"a {_who(o)} {_PLURAL.get(o.action.value, o.action.value)} in the "
                      f"{_where(o, width, height)}")
    more = f" and {n - 6} more" if n > 6 else ""
    return f"{head} ({act_txt}): " + "; ".join(people) + more + "."


class TemplateScene:
    name = "template"

    def describe(self, frame: Frame, observations: Sequence[PersonObservation]) -> SceneCaption:
        text = describe_observations(observations, frame.width, frame.height)
        return SceneCaption(frame_number=frame.frame_number, t_s=frame.t_s, text=text,
                            source=self.name)


def load_template_scene(settings) -> TemplateScene:
    return TemplateScene()
