"""Measure gender and age on every labelled face of ../shared/testdata through the product's path.

Each photo and clip goes through ``run_video`` (detector -> tracker -> face boxes from keypoints
-> attributes backend -> trust gates -> per-track summary). A recording wrapper around the
attributes backend keeps every face's raw reading (model output for the face and its mirror
image, size, sharpness, frame colour, head turn and tilt), with the model run even on faces the
gates would skip, so that one run scores the seed's gates ("before"), each new gate alone, and
all of them ("after"). Truth: ground_truth.json and testdata/README.md (photos: astronaut F ~37,
messi5 M ~23, basketball1 two M, camera M; clips: the gender lists of ground_truth.json, people
told apart by where they are, see ``ITEMS``).

    .venv/bin/python scripts/eval_demographics.py [--backend age_gender|faceres] [--csv faces.csv]

Prints per-face tables (answer rate, precision on answered faces, per gate and per condition),
per-track answers, age error on the photos of known age, and the flip's cost.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline import thresholds as T  # noqa: E402
from pipeline.attributes import summarize_attributes  # noqa: E402
from pipeline.faces import Abstain, FaceReading, abstentions, mean_p_male, to_attributes  # noqa: E402
from pipeline.records import AgeGroup, Gender, PersonObservation  # noqa: E402

TESTDATA = ROOT.parent / "shared" / "testdata"


def _all(g, age=None):
    return lambda tr: (g, age)


def _fall02(tr):  # the faller walks in the middle; the second person sits at the right edge
    return ("M", 20.0) if tr["cx"] < 0.75 else (None, None)


def _walking(tr):  # a woman (left) and a man (right) walk toward the camera side by side
    return ("F", None) if tr["cx"] < 0.53 else ("M", None)


def _classroom(tr):  # 3 men, 1 woman (back row, right: box centre near x=0.5, y=0.64)
    return ("F", None) if 0.4 < tr["cx"] < 0.62 and tr["cy"] < 0.7 else ("M", None)


def _one_by_one(tr):  # a woman from 6 to 20 s, then a man from 23 s (per reading: one track
    # may hold both when the tracker re-links the man to the woman's lost track)
    return ("F", None) if tr.get("t", tr["t0"]) < 21.0 else ("M", None)


def _biggest(g, age):
    return lambda tr: (g, age) if tr["biggest"] else (None, None)


# (relative path, condition, track -> (truth gender or None, truth age or None))
ITEMS = [
    ("images/astronaut.png", "colour photo", _biggest("F", 37.5)),
    ("images/messi5.jpg", "colour photo", _biggest("M", 23.0)),
    ("images/basketball1.png", "grayscale photo", _all("M")),
    ("images/camera.png", "grayscale photo", _all("M")),
    ("clips/falls/Fall01.mp4", "phone video", _all("M")),
    ("clips/falls/Fall02.mp4", "phone video", _fall02),
    ("clips/falls/Fall03.mp4", "phone video", _all("M")),
    ("clips/falls/Fall04.mp4", "phone video", _all("M")),
    ("clips/falls/Fall05.mp4", "phone video", _all("F")),
    ("clips/intel/face-demographics-walking.mp4", "surveillance 480x270", _walking),
    ("clips/intel/classroom.mp4", "surveillance 480x270", _classroom),
    ("clips/intel/one-by-one-person-detection_first30s.mp4", "surveillance 768x432", _one_by_one),
]


class Recorder:
    """Wraps an attributes backend: answers as the product does, keeps every raw reading."""

    def __init__(self, inner):
        self.inner, self.name, self.rows = inner, inner.name, []

    def estimate(self, frame, persons):
        readings = self.inner.read(frame, persons, run_all=True)
        for i, r in enumerate(readings):
            self.rows.append((frame.t_s, int(persons.tracker_id[i]), persons.xyxy[i].copy(), r))
        return [to_attributes(r) for r in readings]


# --- gate sets: which reasons withhold the gender --------------------------------------------
SEED = {Abstain.SMALL, Abstain.BLURRED}  # plus the seed's raw score >= 0.70 (see seed_answer)
GATES = {
    "before (seed: size, blur, score)": None,
    "+ grayscale": SEED | {Abstain.GRAYSCALE, Abstain.LOW_MARGIN},
    "+ profile": SEED | {Abstain.PROFILE, Abstain.LOW_MARGIN},
    "+ tilted": SEED | {Abstain.TILTED, Abstain.LOW_MARGIN},
    "+ mirror reading": SEED | {Abstain.FLIP_DISAGREES, Abstain.LOW_MARGIN},
    "after (all gates)": set(Abstain),
    "all but grayscale": set(Abstain) - {Abstain.GRAYSCALE},
    "all but profile": set(Abstain) - {Abstain.PROFILE},
    "all but tilted": set(Abstain) - {Abstain.TILTED},
    "all but the mirror reading": set(Abstain) - {Abstain.FLIP_DISAGREES},
    "all but margin": set(Abstain) - {Abstain.LOW_MARGIN},
}


def seed_answer(r: FaceReading) -> str | None:
    if r.p_male is None or r.view.side_px < T.FACE_MIN_SIDE_PX or r.view.sharpness < T.FACE_MIN_SHARPNESS:
        return None
    if max(r.p_male, 1 - r.p_male) < T.GENDER_MIN_SCORE:
        return None
    return "M" if r.p_male >= 0.5 else "F"


def gated_answer(r: FaceReading, gates) -> str | None:
    """The gender answered under a set of gates; without FLIP_DISAGREES the mirror image is not
    read at all (neither the flip test nor the mean of face and mirror)."""
    if gates is None:
        return seed_answer(r)
    if Abstain.FLIP_DISAGREES not in gates:
        r = dataclasses.replace(r, p_male_flip=None, age_flip=None)
    if r.p_male is None or set(abstentions(r)) & gates:
        return None
    return "M" if mean_p_male(r) >= 0.5 else "F"


# one threshold varied at a time, every other gate as set in pipeline/thresholds.py
SWEEPS = {
    "FACE_MIN_SHARPNESS": [20.0, 30.0, 40.0, 50.0, 60.0],
    "FACE_MIN_FRAME_CHROMA": [0.0, 2.0, 5.0, 10.0],
    "FACE_MAX_YAW": [0.2, 0.35, 0.5, 1.0, float("inf")],
    "FACE_MAX_ROLL_DEG": [10.0, 15.0, 20.0, 25.0, 90.0],
    "GENDER_MIN_SCORE": [0.6, 0.7, 0.8, 0.9],
    "FACE_MIN_SIDE_PX": [30.0, 40.0, 50.0, 60.0],
}


def run_item(rel, backends, settings, testdata: Path = TESTDATA):
    """``run_video`` on one item with a recorder around the attributes backend."""
    from pipeline.run import run_video

    rec = Recorder(backends.attributes)
    b = dataclasses.replace(backends, attributes=rec)
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        result = run_video(testdata / rel, Path(out), settings, backends=b)
        wall = time.perf_counter() - t
    return rec.rows, result, wall


def track_info(result):
    w, h = result.video.width, result.video.height
    by: dict[int, list] = defaultdict(list)
    for o in result.observations:
        by[o.obj_id].append(o)
    info = {}
    areas = {tid: np.median([(o.xyxy[2] - o.xyxy[0]) * (o.xyxy[3] - o.xyxy[1]) for o in obs])
             for tid, obs in by.items()}
    big = max(areas, key=areas.get) if areas else None
    for tid, obs in by.items():
        xy = np.array([o.xyxy for o in obs])
        info[tid] = {"cx": float(np.median((xy[:, 0] + xy[:, 2]) / 2) / w),
                     "cy": float(np.median((xy[:, 1] + xy[:, 3]) / 2) / h),
                     "t0": obs[0].t_s, "n": len(obs), "biggest": tid == big, "obs": obs}
    return info


def rate(n, d):
    return f"{n}/{d} = {n / d:.2f}" if d else "-"


def evaluate(backends, settings, only: str | None = None, log=print, testdata: Path = TESTDATA):
    """Every item of ``ITEMS`` (or those whose path contains ``only``) through ``run_video``:
    ``(faces, tracks)``; faces: (item, condition, truth, FaceReading, track, t_s) for every
    labelled face with a box; tracks: (item, track, truth, before, after, age, truth age,
    readings, centre) for every labelled track ("mixed": two people in one track)."""
    faces, tracks = [], []
    for rel, cond, truth_of in ITEMS:
        if only and only not in rel:
            continue
        rows, result, wall = run_item(rel, backends, settings, testdata)
        info = track_info(result)
        summ = {t.obj_id: t for t in result.tracks}
        for t_s, tid, xyxy, r in rows:
            if tid not in info or r is None:
                continue
            g, _ = truth_of({**info[tid], "t": t_s})
            if g is not None:
                faces.append((rel, cond, g, r, tid, t_s))
        rmap = {(round(t_s, 3), t): r for t_s, t, _, r in rows}
        for tid, ti in info.items():
            obs = ti["obs"]
            labels = {truth_of({**ti, "t": o.t_s})[0] for o in obs}
            g, age_truth = truth_of(ti)
            if g is None:
                continue
            if len(labels) > 1:
                g = "mixed"  # one track holding two people: not scored
            # the seed's per-frame genders, summarised by the same per-track rule
            seed_obs = []
            for o in obs:
                r = rmap.get((round(o.t_s, 3), tid))
                a = None if r is None else seed_answer(r)
                seed_obs.append(dataclasses.replace(
                    o, gender={"M": Gender.MALE, "F": Gender.FEMALE, None: Gender.UNKNOWN}[a]))
            before = summarize_attributes(seed_obs)[2]
            s = summ.get(tid)
            after = s.gender if s else Gender.UNKNOWN
            tracks.append((rel, tid, g, before, after, s.age if s else None, age_truth, len(obs),
                           f"{ti['cx']:.2f},{ti['cy']:.2f}"))
        log(f"{rel}: {len(info)} tracks, {sum(1 for f in faces if f[0] == rel)} labelled face "
            f"readings, {wall:.1f} s, attributes {result.stage_ms.get('attributes', 0):.0f} ms")
    return faces, tracks


def flip_cost(backend, repeats: int = 15) -> list[tuple[str, int, float, float]]:
    """ms per frame of the attributes backend without and with the mirror reading, on a photo
    and on a Fall01 frame with a usable face (after a warm-up; the two alternate, median of
    ``repeats``): (item, faces read, ms off, ms on)."""
    import cv2

    from pipeline.backends.movenet import MODEL_FILE, MoveNetDetector
    from pipeline.records import Frame
    from settings import Settings

    det = MoveNetDetector(Settings().models_dir / MODEL_FILE, threads=1, long_side=256)
    images = [("images/astronaut.png", cv2.imread(str(TESTDATA / "images/astronaut.png")))]
    cap = cv2.VideoCapture(str(TESTDATA / "clips/falls/Fall01.mp4"))
    cap.set(cv2.CAP_PROP_POS_MSEC, 2400)
    images.append(("clips/falls/Fall01.mp4 @2.4 s", cap.read()[1]))
    out = []
    keep = backend.flip
    for name, bgr in images:
        img = np.ascontiguousarray(bgr[:, :, ::-1])
        persons = det.detect_image(img)
        frame = Frame(0, 0.0, img)
        n = sum(r is not None and r.p_male is not None for r in backend.read(frame, persons))
        ms = {False: [], True: []}
        for _ in range(repeats):
            for flip in (False, True):
                backend.flip = flip
                t = time.perf_counter()
                backend.read(frame, persons)
                ms[flip].append((time.perf_counter() - t) * 1000.0)
        out.append((name, n, float(np.median(ms[False])), float(np.median(ms[True]))))
    backend.flip = keep
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="age_gender", choices=["age_gender", "faceres"])
    ap.add_argument("--faceres-path", default=str(ROOT.parent / "shared/models/faceres.onnx"))
    ap.add_argument("--csv", help="write every labelled face's reading here")
    ap.add_argument("--only", help="substring of the items to run")
    args = ap.parse_args(argv)

    from pipeline.backends.registry import load_backends
    from settings import Settings

    settings = Settings(attributes=args.backend)
    if args.backend == "faceres":
        settings = dataclasses.replace(settings, faceres_path=Path(args.faceres_path))
    backends = load_backends(settings)
    faces, tracks = evaluate(backends, settings, args.only, log=lambda m: print(m, flush=True))

    letter = {Gender.MALE: "M", Gender.FEMALE: "F", Gender.UNKNOWN: "?"}
    print("\n## Per face (every labelled face with a face box: one reading per person per sampled frame)")
    print("| gates | answered | precision on answered | wrong |")
    print("|---|---|---|---|")
    for name, gates in GATES.items():
        ans = [(g, gated_answer(r, gates)) for _, _, g, r, *_ in faces]
        a = [(g, x) for g, x in ans if x is not None]
        ok = sum(g == x for g, x in a)
        print(f"| {name} | {rate(len(a), len(ans))} | {rate(ok, len(a))} | {len(a) - ok} |")

    print("\n## One threshold varied, the other gates as set (per face: answered, precision)")
    for name, values in SWEEPS.items():
        keep = getattr(T, name)
        cells = []
        for v in values:
            setattr(T, name, v)
            a = [(g, gated_answer(r, set(Abstain))) for _, _, g, r, *_ in faces]
            a = [(g, x) for g, x in a if x is not None]
            ok = sum(g == x for g, x in a)
            cells.append(f"{v:g}{'*' if v == keep else ''}: {len(a)} ans, {ok}/{len(a)} right")
        setattr(T, name, keep)
        print(f"- {name}: " + "; ".join(cells))

    print("\n## Per face and condition, before -> after")
    print("| condition | faces | answered before | precision before | answered after | precision after |")
    print("|---|---|---|---|---|---|")
    for cond in dict.fromkeys(c for _, c, *_ in faces):
        sel = [(g, r) for _, c, g, r, *_ in faces if c == cond]
        row = [cond, str(len(sel))]
        for gates in (None, set(Abstain)):
            a = [(g, gated_answer(r, gates)) for g, r in sel]
            a = [(g, x) for g, x in a if x is not None]
            row += [str(len(a)), rate(sum(g == x for g, x in a), len(a))]
        print("| " + " | ".join(row) + " |")

    print("\n## Why answers were withheld after (labelled faces; a face may have several reasons)")
    why = defaultdict(int)
    for _, _, _, r, *_ in faces:
        for w in abstentions(r):
            why[w.value] += 1
    print(", ".join(f"{k}: {v}" for k, v in sorted(why.items(), key=lambda kv: -kv[1])))

    print("\n## Per track (the product's per-track summary): truth, before, after")
    print("| item | track (centre x,y) | readings | truth | before | after | age after | truth age |")
    print("|---|---|---|---|---|---|---|---|")
    for rel, tid, g, before, after, age, age_truth, n, c in tracks:
        print(f"| {rel} | {tid} ({c}) | {n} | {g} | {letter[before]} | {letter[after]} | "
              f"{'-' if age is None else round(age)} | {'-' if age_truth is None else age_truth} |")
    scored = [t for t in tracks if t[2] != "mixed"]
    for label, k in (("before", 3), ("after", 4)):
        ans = [(t[2], letter[t[k]]) for t in scored if t[k] is not Gender.UNKNOWN]
        ok = sum(g == x for g, x in ans)
        print(f"tracks {label}: answered {rate(len(ans), len(scored))}, precision {rate(ok, len(ans))}")
    aged = [(t[5], t[6]) for t in tracks if t[6] is not None and t[5] is not None]
    if aged:
        err = [abs(a - t) for a, t in aged]
        grp = sum(AgeGroup.from_age(a) is AgeGroup.from_age(t) for a, t in aged)
        print(f"age on tracks of known age: mean abs error {np.mean(err):.1f} y over {len(aged)}, "
              f"age group right {grp}/{len(aged)}")

    print("\n## Cost of the mirror reading (ms per frame of the attributes backend, median of 15)")
    for name, n, off, on in flip_cost(backends.attributes):
        print(f"- {name}: {n} face(s) read, {off:.1f} ms without, {on:.1f} ms with the mirror")

    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            wr = csv.writer(fh)
            wr.writerow(["item", "condition", "track", "t_s", "truth", "p_male", "p_male_flip", "age",
                         "side_px", "sharpness", "frame_chroma", "yaw", "roll_deg", "abstain"])
            for rel, cond, g, r, tid, t_s in faces:
                v = r.view
                wr.writerow([rel, cond, tid, t_s, g, r.p_male, r.p_male_flip, r.age, round(v.side_px, 1),
                             round(v.sharpness, 1), round(v.frame_chroma, 2), round(v.yaw, 3),
                             round(v.roll_deg, 1), "|".join(w.value for w in abstentions(r))])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
