"""Cached step 1 of the action model: the engine's own people (detection + tracking at the
product's sampling) on the labelled clips, written to ``var/actions/tracks/<clip>.json``.

    python scripts/action_tracks.py            # every clip of the list that is not cached yet
    python scripts/action_tracks.py --force    # again (e.g. after the detector runtime changed)
    python scripts/action_tracks.py --sheets var/actions/sheets   # contact sheets for labelling

The clips are the ones of ../shared/testdata with people and up to ``PER_SOURCE`` clips of each
recording of ../shared/datasets/surveillance-fight (no-fight clips first). Footage is read only;
nothing of it goes into the repository (models/actions_labels.csv holds labels only).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
CACHE = ROOT / "var" / "actions" / "tracks"
PER_SOURCE = 1
TESTDATA = [
    "clips/pedestrians/vtest.avi", "clips/intel/one-by-one-person-detection_first30s.mp4",
    "clips/intel/classroom.mp4", "clips/intel/store-aisle-detection.mp4",
    "clips/intel/face-demographics-walking.mp4", "clips/adl/S1_ADL_16.mp4",
    "clips/adl/S3_ADL_07.mp4", "clips/adl/S3_ADL_15.mp4", "clips/falls/Fall01.mp4",
    "clips/falls/Fall02.mp4", "clips/falls/Fall03.mp4", "clips/falls/Fall04.mp4",
    "clips/falls/Fall05.mp4", "clips/falls/S1_Fall_13.mp4", "clips/falls/S2_Fall_12.mp4",
    "clips/falls/S4_Fall_02.mp4", "clips/falls/urfd-fall-01-cam0.mp4",
]


def camera_of(clip: str, sources: dict[str, str]) -> str:
    """The cross-validation group: the recording for the fight set, the camera for testdata."""
    name = Path(clip).name
    if clip.startswith("fight/"):
        return "fight:" + (sources.get(name) or name)
    if name.startswith(("Fall0",)):
        return "phone-falls"  # one phone camera, one room
    if name.startswith(("S1_", "S2_", "S3_", "S4_")):
        return "gmdcsa24:" + name.split("_")[0]
    return "testdata:" + Path(name).stem.split("_")[0]


def clip_list() -> list[tuple[str, Path]]:
    out = [(c.removeprefix("clips/"), SHARED / "testdata" / c) for c in TESTDATA]
    rows = list(csv.DictReader(open(SHARED / "datasets/surveillance-fight/labels.csv")))
    by_src: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_src[r["source_video"] or r["clip"]].append(r)
    for src, rs in sorted(by_src.items()):
        if not rs[0]["source_video"]:
            continue  # clips of no known recording: their camera may repeat another group's
        rs.sort(key=lambda r: (r["label"] != "no_fight", r["clip"]))
        for r in rs[:PER_SOURCE]:
            out.append(("fight/" + Path(r["clip"]).name,
                        SHARED / "datasets/surveillance-fight" / r["clip"]))
    return out


def path_of(clip: str) -> Path:
    if clip.startswith("fight/"):
        return SHARED / "datasets/surveillance-fight/clips" / clip.removeprefix("fight/")
    return SHARED / "testdata/clips" / clip


def fight_sources() -> dict[str, str]:
    rows = csv.DictReader(open(SHARED / "datasets/surveillance-fight/labels.csv"))
    return {Path(r["clip"]).name: r["source_video"] for r in rows}


def track_clip(path: Path, settings, detector, dense) -> dict:
    from pipeline.sampling import SamplingPlan, VideoFrames, probe_video
    from pipeline.tracking import PersonTracker

    info = probe_video(path)
    plan = SamplingPlan.for_video(info, settings)
    skip = plan.frame_skip
    det = dense if plan.dense else detector
    tracker = PersonTracker(plan.sampled_fps)
    rows = []
    for frame in VideoFrames(path, skip, info):
        persons = det.detect([frame])[0]
        persons = tracker.update(persons, frame.t_s)
        for i in range(len(persons)):
            tid = int(persons.tracker_id[i]) if persons.tracker_id is not None else -1
            if tid < 0:
                continue
            rows.append({"frame": frame.frame_number, "t": round(frame.t_s, 3), "track": tid,
                         "box": [round(float(v), 1) for v in persons.xyxy[i]],
                         "conf": round(float(persons.confidence[i]), 4),
                         "kp": [[round(float(a), 1), round(float(b), 1), round(float(c), 3)]
                                for a, b, c in persons.keypoints[i]]})
    return {"fps": info.fps, "frame_skip": skip, "width": info.width, "height": info.height,
            "sampled_fps": info.fps / skip, "rows": rows}


def extract(force: bool, extra: tuple[str, ...] = ()) -> None:
    from pipeline.backends.registry import load_backend, load_dense_detector
    from settings import Settings

    settings = Settings.from_env()
    detector = load_backend("detector", settings.detector, settings)
    dense = load_dense_detector(detector, settings) or detector
    CACHE.mkdir(parents=True, exist_ok=True)
    listed = clip_list()
    labelled = {r["clip"] for r in csv.DictReader(open(ROOT / "models/actions_labels.csv"))}
    listed += [(c, path_of(c)) for c in sorted((labelled | set(extra)) - {n for n, _ in listed})]
    for name, path in listed:  # the list's clips, every clip labelled later, and --clips
        out = CACHE / (name.replace("/", "__") + ".json")
        if out.exists() and not force:
            continue
        t = time.time()
        data = track_clip(path, settings, detector, dense)
        data["clip"] = name
        out.write_text(json.dumps(data))
        print(f"{name}: {len(data['rows'])} rows, {time.time() - t:.1f} s", flush=True)


def load_tracks() -> dict[str, dict]:
    return {json.loads(p.read_text())["clip"]: json.loads(p.read_text())
            for p in sorted(CACHE.glob("*.json"))}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--clips", nargs="*", default=(),
                    help="more clips to extract (to label next), e.g. fight/fi010.mp4")
    ap.add_argument("--sheets", type=Path, help="render labelling contact sheets into this folder")
    a = ap.parse_args()
    if a.sheets:
        from action_sheets import render
        render(a.sheets)
    else:
        extract(a.force, tuple(a.clips))
