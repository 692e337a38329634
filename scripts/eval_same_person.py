"""Same-person benchmark: rank-1 of "find this person" on labelled people
(datasets/search/same_person.json) seen in two or more tracks of ../shared/testdata clips, one
row per descriptor of ``pipeline.person_vectors``.

Each clip is analysed once by the CLI (``python -m pipeline run --no-store``) into
var/same_person/<clip>/ (its results_final.csv is the tracks); a labelled appearance names a
person by clip, time and a point on them (x, y as shares of the frame), and is resolved to the
track whose box holds that point at the nearest sampled frame. Every resolved appearance is a
query; the gallery is every other track of every clip, except the tracks of the query's own
clip that overlap it in time (one person is not in two places at once). Rank-1: the best
gallery track belongs to the same person. "other clips" restricts the gallery to other clips,
as "Find this person in other videos" does.

    python scripts/eval_same_person.py [--sheets] [--json out.json]
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TESTDATA = ROOT.parent / "shared" / "testdata" / "clips"
LABELS = ROOT / "datasets" / "search" / "same_person.json"
DATA = ROOT / "var" / "same_person"


def observations(csv_path: Path):
    from pipeline.records import PersonObservation

    out = []
    with open(csv_path, newline="") as f:
        for r in csv.DictReader(f):
            x, y, w, h = (float(r[k]) for k in ("bbox_x", "bbox_y", "bbox_width", "bbox_height"))
            kps = tuple(tuple(k) for k in json.loads(r["keypoints"] or "[]"))
            out.append(PersonObservation(int(r["frame_number"]), float(r["timestamp"]),
                                         int(r["obj_id"]), (x, y, x + w, y + h),
                                         float(r["det_confidence"]), kps))
    return out


def analyse(clip: str) -> Path:
    out = DATA / Path(clip).stem
    if not (out / "results_final.csv").is_file():
        subprocess.run([sys.executable, "-m", "pipeline", "run", "--input", str(TESTDATA / clip),
                        "--no-store", "--quiet", "--output", str(out)], check=True, cwd=ROOT)
    return out


def frames_of(clip: str, wanted: set[int]):
    """The clip's frames numbered as the engine numbers them, those in ``wanted`` only."""
    from pipeline.sampling import VideoFrames, probe_video

    path = TESTDATA / clip
    info = probe_video(path)
    for fr in VideoFrames(path, 1, info):
        if fr.frame_number in wanted:
            yield fr
            wanted.discard(fr.frame_number)
            if not wanted:
                return


def vectors(clip: str, descriptor, backbone, pools=("mean", "majority")):
    """(obj_id -> vector, obj_id -> (first, last) s, ms of describing, samples described):
    the sampled rows fed frame by frame to the engine's collector, as a run does."""
    from pipeline import person_vectors as pv

    obs = observations(analyse(clip) / "results_final.csv")
    spans: dict[int, list[float]] = {}
    by_frame: dict[int, list] = defaultdict(list)
    for o in obs:
        s = spans.setdefault(o.obj_id, [o.t_s, o.t_s])
        s[0], s[1] = min(s[0], o.t_s), max(s[1], o.t_s)
        by_frame[o.frame_number].append(o)
    people = pv.PersonVectors(backbone, "eval", descriptor)
    ms = 0.0
    for fr in frames_of(clip, set(by_frame)):
        t = time.perf_counter()
        people.add(fr, by_frame[fr.frame_number])
        ms += (time.perf_counter() - t) * 1000.0
    return ({p: {v.obj_id: v.vector for v in people.vectors(pool=p)} for p in pools}, spans, ms,
            len(by_frame), people.described)


def resolve(clip: str, t: float, x: float, y: float) -> int | None:
    from pipeline.sampling import probe_video

    info = probe_video(TESTDATA / clip)
    obs = observations(analyse(clip) / "results_final.csv")
    if not obs:
        return None
    near = min({o.t_s for o in obs}, key=lambda s: abs(s - t))
    px, py = x * info.width, y * info.height
    hits = [o for o in obs if o.t_s == near and o.xyxy[0] <= px <= o.xyxy[2]
            and o.xyxy[1] <= py <= o.xyxy[3]]
    if not hits:
        return None
    return min(hits, key=lambda o: (o.xyxy[2] - o.xyxy[0]) * (o.xyxy[3] - o.xyxy[1])).obj_id


def rank1(people, vecs, spans, other_clips_only: bool, twins: dict[str, str] | None = None
          ) -> tuple[int, int, list[str]]:
    """(correct, queries, misses) over every labelled appearance with a positive in the gallery;
    ``twins`` (clip -> the clip of the same footage) leaves the query's twin out of its gallery."""
    gallery = [(c, o) for c in vecs for o in vecs[c]]
    correct = n = 0
    misses = []
    for pid, apps in people.items():
        for q in apps:
            qc, qo = q
            if qo not in vecs[qc]:
                continue
            qs = spans[qc][qo]

            def allowed(c, o):
                if (c, o) == q or (other_clips_only and c == qc) or (twins and twins.get(qc) == c):
                    return False
                if c == qc:  # same clip: not a track seen at the same time
                    s = spans[c][o]
                    return s[1] < qs[0] or s[0] > qs[1]
                return True

            cands = [g for g in gallery if allowed(*g)]
            positives = {a for a in apps if a != q and a in cands}
            if not positives or not cands:
                continue
            sims = [float(np.dot(vecs[qc][qo], vecs[c][o])) for c, o in cands]
            best = cands[int(np.argmax(sims))]
            n += 1
            if best in positives:
                correct += 1
            else:
                misses.append(f"{pid}: {qc}#{qo} -> {best[0]}#{best[1]}")
    return correct, n, misses


def sheets(clips: list[str]) -> None:
    """A contact sheet per clip: each track's clearest sample, labelled track, time, x, y."""
    import cv2

    from pipeline import person_vectors as pv
    from pipeline.media import crop_box

    out = DATA / "sheets"
    out.mkdir(parents=True, exist_ok=True)
    for clip in clips:
        if not (DATA / Path(clip).stem / "results_final.csv").is_file():
            continue  # not analysed yet
        obs = observations(analyse(clip) / "results_final.csv")
        best: dict[int, tuple] = {}
        by_frame: dict[int, list] = defaultdict(list)
        for o in obs:
            by_frame[o.frame_number].append(o)
        for rows in by_frame.values():
            for o, sc in zip(rows, pv.sample_scores(rows)):
                if o.obj_id not in best or sc > best[o.obj_id][0]:
                    best[o.obj_id] = (sc, o)
        picks = {k: (v[1],) for k, v in best.items()}
        frames = {f.frame_number: f for f in frames_of(clip, {o.frame_number for v in picks.values()
                                                               for o in v})}
        tiles = []
        for oid, (o,) in sorted(picks.items()):
            fr = frames.get(o.frame_number)
            if fr is None:
                continue
            x0, y0, x1, y1 = o.xyxy
            crop = crop_box(fr.image, (x0, y0, x1 - x0, y1 - y0), 0.1, 0.05)
            if crop is None:
                continue
            crop = cv2.resize(crop, (int(160 * crop.shape[1] / crop.shape[0]) or 1, 160))
            tile = np.full((190, 130, 3), 255, np.uint8)
            tile[:160, :min(130, crop.shape[1])] = crop[:, :130]
            H, W = fr.image.shape[:2]
            cv2.putText(tile, f"#{oid} t{o.t_s:.1f}", (2, 174), 0, 0.4, (0, 0, 0), 1)
            cv2.putText(tile, f"{(x0 + x1) / 2 / W:.2f},{(y0 + y1) / 2 / H:.2f}", (2, 187), 0, 0.4,
                        (0, 0, 0), 1)
            tiles.append(tile)
        rows = [np.hstack(tiles[i:i + 8] + [np.full((190, 130, 3), 255, np.uint8)]
                          * (8 - len(tiles[i:i + 8]))) for i in range(0, len(tiles), 8)]
        if rows:
            cv2.imwrite(str(out / f"{Path(clip).stem}.png"),
                        cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))
        print(out / f"{Path(clip).stem}.png", len(tiles), "tracks")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sheets", action="store_true", help="write contact sheets for labelling")
    ap.add_argument("--descriptors", nargs="*", default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    from pipeline import person_vectors as pv
    from pipeline.appearance import BACKBONE_FILE, Backbone
    from pipeline.backends.onnx_common import CpuInference

    labels = json.loads(LABELS.read_text())
    clips = labels["clips"]
    if args.sheets:
        sheets(clips)
        return 0
    people: dict[str, list[tuple[str, int]]] = defaultdict(list)
    unresolved = []
    for p in labels["people"]:
        for a in p["seen"]:
            oid = resolve(a["clip"], a["t"], a["x"], a["y"])
            if oid is None:
                unresolved.append(f"{p['id']} {a}")
            elif "track" in a and oid != a["track"]:
                print(f"warning: {p['id']} {a['clip']} t={a['t']} is track {oid} now, labelled on "
                      f"track {a['track']}: check the label against this run", file=sys.stderr)
            elif (a["clip"], oid) not in people[p["id"]]:
                people[p["id"]].append((a["clip"], oid))
    twins = {a: b for pair in labels.get("same_footage", []) for a, b in (pair, pair[::-1])}
    backbone = Backbone(ROOT / "models" / BACKBONE_FILE, CpuInference(threads=2))
    rows = []
    names = args.descriptors or [d.value for d in pv.Descriptor]
    for name in names:
        d = pv.Descriptor(name)
        by_pool: dict[str, dict] = {"mean": {}, "majority": {}}
        spans, ms, nf, ns = {}, 0.0, 0, 0
        for clip in clips:
            per_pool, spans[clip], m, f, n_desc = vectors(clip, d, backbone)
            for p_, v in per_pool.items():
                by_pool[p_][clip] = v
            ms, nf, ns = ms + m, nf + f, ns + n_desc
        for pool, vecs in by_pool.items():
            c_all, n_all, miss_all = rank1(people, vecs, spans, False)
            c_oth, n_oth, _ = rank1(people, vecs, spans, True)
            c_hard, n_hard, _ = rank1(people, vecs, spans, False, twins)
            rows.append({"descriptor": name, "pool": pool,
                         "rank1_all": c_all / max(1, n_all), "queries_all": n_all,
                         "rank1_other_clips": c_oth / max(1, n_oth), "queries_other_clips": n_oth,
                         "rank1_other_footage_or_time": c_hard / max(1, n_hard),
                         "queries_other_footage_or_time": n_hard,
                         "ms_per_sampled_frame": ms / max(1, nf), "sampled_frames": nf,
                         "samples_described": ns, "misses": miss_all})
            print(f"{name:18s} {pool:8s} rank-1 {c_all}/{n_all} = {c_all / max(1, n_all):.3f}"
                  f"   other clips {c_oth}/{n_oth} = {c_oth / max(1, n_oth):.3f}   not the same "
                  f"footage {c_hard}/{n_hard} = {c_hard / max(1, n_hard):.3f}   "
                  f"{ms / max(1, nf):.1f} ms per sampled frame ({nf} frames with people, {ns} "
                  f"samples described)", flush=True)
    if unresolved:
        print("unresolved appearances:", *unresolved, sep="\n  ")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "unresolved": unresolved}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
