"""Search benchmark: labelled queries (datasets/search/queries.json) over a few
../shared/testdata clips analysed into a throwaway embedded database (var/eval-search), scored
for today's search with the query's words alone (``--literal``, the baseline) and with query
understanding (services.search.query_terms).

A query's returned moments are the hits the product itself calls matches
(``services.search.answer.relevant_hits``, the Search page's and the answer's threshold) among the
top 10. Per positive query: precision@5 (answering hits among the first 5, over 5) and nDCG@10
(binary gains; the ideal ranking fills the 10 places with answering events, or as many as the
database holds). Per negative query: correct when nothing is returned. Figures for all queries
and for the even- and odd-numbered halves (the ranking rules were developed on the even half).

    python scripts/eval_search.py [--data-dir var/eval-search] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TESTDATA = ROOT.parent / "shared" / "testdata" / "clips"
QUERIES = ROOT / "datasets" / "search" / "queries.json"
TOP_K = 10


def answers(event, video_name: str, width: int | None, moments) -> bool:
    """Whether a stored event is inside one of a query's labelled moments."""
    for m in moments:
        if m["clip"] != video_name:
            continue
        t0, t1 = m.get("t", (0.0, 1e9))
        if not t0 - 0.25 <= event.t_s <= t1 + 0.25:
            continue
        if "x" in m and width:
            x, _, w, _ = event.bbox
            cx = (x + w / 2) / width
            if not m["x"][0] <= cx <= m["x"][1]:
                continue
        return True
    return False


def ndcg(gains: list[int], n_ideal: int, k: int = TOP_K) -> float:
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains[:k]))
    ideal = sum(1 / math.log2(i + 2) for i in range(min(k, n_ideal)))
    return dcg / ideal if ideal else 0.0


def ingest(settings, clips: list[Path]) -> None:
    from services import database
    from services.jobs.ingest import analyze_source
    from db import queries

    with database.pooled(settings) as conn:
        have = {v.name for v in queries.list_videos(conn) if v.status.value == "completed"}
    for clip in clips:
        if clip.name in have:
            continue
        t = time.perf_counter()
        analyze_source(str(clip), settings)
        print(f"analysed {clip.name} in {time.perf_counter() - t:.0f} s", file=sys.stderr)


def evaluate(settings, spec: dict, understand: bool, embedder) -> dict:
    from db import queries
    from services.search import answer as answer_service
    from services import database
    from services.search.search import search

    with database.pooled(settings) as conn:
        videos = {v.video_id: v for v in queries.list_videos(conn)}
        events = queries.list_events(conn)
    per_query = []
    for item in spec["queries"]:
        moments = item["relevant"]
        hits = search(item["q"], None, TOP_K, settings=settings, embedder=embedder,
                      understand=understand)
        returned = answer_service.relevant_hits(hits, embedder.name)
        gains = [int(answers(h.event, h.video_name, videos[h.event.video_id].width, moments))
                 for h in returned]
        row = {"q": item["q"], "returned": len(returned), "gains": gains,
               "hits": [f"{h.video_name}@{h.event.t_s:.1f} #{h.event.obj_id} "
                        f"{h.event.event_type.value}/{h.event.action.value} sim "
                        f"{h.similarity if h.similarity is None else round(h.similarity, 3)}"
                        for h in returned]}
        if moments:
            n_rel = sum(answers(e, videos[e.video_id].name, videos[e.video_id].width, moments)
                        for e in events)
            row.update(p5=sum(gains[:5]) / 5.0, ndcg10=ndcg(gains, n_rel), n_relevant=n_rel)
        else:
            row.update(empty=not returned)
        per_query.append(row)
    return {"system": "query understanding" if understand else "baseline (words alone, main)",
            **figures(per_query),
            # the ranking rules were developed looking at the even half only ("Searching")
            "even_half": figures(per_query[0::2]), "odd_half": figures(per_query[1::2]),
            "per_query": per_query}


def figures(per_query: list[dict]) -> dict:
    pos = [r for r in per_query if "p5" in r]
    neg = [r for r in per_query if "empty" in r]
    return {
        "queries": len(per_query), "positives": len(pos), "negatives": len(neg),
        "precision_at_5": sum(r["p5"] for r in pos) / max(1, len(pos)),
        "ndcg_at_10": sum(r["ndcg10"] for r in pos) / max(1, len(pos)),
        "negatives_empty": sum(r["empty"] for r in neg) / max(1, len(neg)),
        "negatives_empty_n": sum(r["empty"] for r in neg),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=ROOT / "var" / "eval-search",
                    help="throwaway embedded database and storage (analysed once, reused)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here too")
    ap.add_argument("--per-query", action="store_true", help="print each query's figures")
    args = ap.parse_args(argv)
    if not TESTDATA.is_dir():
        print(f"{TESTDATA} is missing; the benchmark needs ../shared/testdata", file=sys.stderr)
        return 2
    os.environ["VA_DATA_DIR"] = str(args.data_dir.resolve())
    for var in ("DATABASE_URL", "POSTGRES_HOST", "S3_BUCKET_VIDEOS", "S3_BUCKET_HIGHLIGHTS"):
        os.environ.pop(var, None)
    from services.search.embeddings import load_embedder
    from settings import Settings

    settings = Settings.from_env()
    spec = json.loads(QUERIES.read_text())
    ingest(settings, [TESTDATA / c for c in spec["clips"]])
    embedder = load_embedder(settings)
    rows = [evaluate(settings, spec, False, embedder), evaluate(settings, spec, True, embedder)]
    print(f"{'system':42} {'queries':>7} {'P@5':>6} {'nDCG@10':>8} {'negatives empty':>16}")
    for r in rows:
        for label, f in (("", r), (" even half", r["even_half"]), (" odd half", r["odd_half"])):
            print(f"{(r['system'] + label)[:42]:42} {f['queries']:>7} {f['precision_at_5']:>6.3f} "
                  f"{f['ndcg_at_10']:>8.3f} {f['negatives_empty_n']:>5} / {f['negatives']}")
    if args.per_query:
        for i, (a, b) in enumerate(zip(rows[0]["per_query"], rows[1]["per_query"])):
            fig = (lambda r: f"P@5 {r['p5']:.1f} nDCG {r['ndcg10']:.2f} n={r['returned']}"
                   if "p5" in r else f"empty {r['empty']} n={r['returned']}")
            print(f"{i:2} {a['q'][:45]:45} | base {fig(a):28} | new {fig(b)}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
