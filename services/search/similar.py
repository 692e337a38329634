"""The same person elsewhere: the tracks whose appearance vectors (``pipeline.person_vectors``,
stored by db/person_vectors.py) are nearest a chosen track's, for the Events page's track cards,
the Video page and ``python -m pipeline similar``.

By default only other videos are searched ("find this person in other videos": the analyst
already sees the video they are in); ``same_video`` adds the video's own other tracks (a person
who left and came back), never one seen at the same time as the query."""
from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from db.person_vectors import SimilarTrack
from pipeline.errors import PipelineError
from services import database
from services.errors import QueryError
from services.media.source_uri import SourceUri
from settings import Settings

log = logging.getLogger("va.similar")

MAX_TOP_K = 100


@dataclass(frozen=True)
class SimilarHit:
    """A track like the query's, with a crop of its person (JPEG; None when the source video is
    not a local file any more)."""

    track: SimilarTrack
    crop: bytes | None = None


def similar_tracks(settings: Settings, video_id: int, obj_id: int, top_k: int = 10,
                   same_video: bool = False) -> list[SimilarTrack]:
    """The ``top_k`` tracks most like track ``obj_id`` of video ``video_id``, best first.
    Raises ``QueryError`` (one line, with the fix) for an unknown video or track, or a track
    without a vector."""
    from db import person_vectors, queries

    if not 1 <= int(top_k) <= MAX_TOP_K:
        raise QueryError(f"--top-k {top_k} must be between 1 and {MAX_TOP_K}")
    with database.pooled(settings) as conn:
        if queries.get_video(conn, int(video_id)) is None:
            raise QueryError(f"video {video_id} does not exist; list the videos with "
                             f"`python -m pipeline jobs` and give one of their ids")
        tracks = {t.obj_id for t in queries.list_tracks(conn, int(video_id))}
        if int(obj_id) not in tracks:
            some = ", ".join(map(str, sorted(tracks)[:12])) or "none: analyse it first"
            raise QueryError(f"video {video_id} has no track {obj_id}; its tracks are {some}")
        query = person_vectors.track_vector(conn, int(video_id), int(obj_id), _model(settings))
        if query is None:
            raise QueryError(f"track {obj_id} of video {video_id} has no appearance vector (the "
                             f"video was analysed before person vectors existed); re-analyse it")
        return person_vectors.similar(conn, query, int(top_k), same_video=same_video)


def _model(settings: Settings) -> str | None:
    """The model this installation's engine writes (preferred when a track has several)."""
    from pipeline.person_vectors import model_id

    try:
        return model_id(settings.models_dir)
    except OSError:  # a backbone descriptor whose weights are not on this (search-only) host
        return None


def similar_hits(settings: Settings, video_id: int, obj_id: int, top_k: int = 6,
                 same_video: bool = False, crop_height_px: int = 120) -> list[SimilarHit]:
    """``similar_tracks`` with a crop of each hit's person from its local source video."""
    from db import queries

    hits = similar_tracks(settings, video_id, obj_id, top_k, same_video)
    with database.pooled(settings) as conn:
        sources = {v: getattr(queries.get_video(conn, v), "source_uri", None)
                   for v in {h.video_id for h in hits}}
    return [SimilarHit(h, _crop(sources.get(h.video_id), h, crop_height_px)) for h in hits]


def _crop(uri: str | None, hit: SimilarTrack, height_px: int) -> bytes | None:
    path = Path(uri or "")
    if hit.bbox is None or not uri or SourceUri.parse(uri).is_stored or not path.is_file():
        return None
    from pipeline.media import same_person_crops

    try:
        crops = same_person_crops(path, [(hit.frame_number, hit.t_s, hit.bbox)], 1, height_px)
    except PipelineError as e:  # the file changed or went away since the analysis
        log.warning("no crop of track %s from %s: %s", hit.obj_id, path, e)
        return None
    return crops[0] if crops else None


def hit_json(h: SimilarTrack) -> str:
    return json.dumps({"video_id": h.video_id, "video": h.video, "obj_id": h.obj_id,
                       "first_t_s": round(h.first_t_s, 2), "last_t_s": round(h.last_t_s, 2),
                       "similarity": round(h.similarity, 4)})


def similar_cli(args) -> int:
    """``python -m pipeline similar --video-id N --track T [--top-k K] [--same-video]``: the
    nearest tracks as JSON lines, best first."""
    hits = similar_tracks(Settings.from_env(), args.video_id, args.track, args.top_k,
                          same_video=args.same_video)
    for h in hits:
        print(hit_json(h))
    if not hits:
        print("no similar person: no other " + ("track" if args.same_video else "video")
              + " has person vectors of this model", file=sys.stderr)
    sys.stdout.flush()
    return 0
