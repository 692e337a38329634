"""Token counts of the cloud backends a job used (Claude scenes, Titan embeddings...)."""
from __future__ import annotations


def usage(backends, *more) -> dict[str, dict[str, int]]:
    """Token counts of the cloud backends (Claude scenes, Titan...) that keep a ``usage``
    counter (``snapshot() -> {model: {calls, input_tokens, output_tokens}}``)."""
    out: dict[str, dict[str, int]] = {}
    objs = [getattr(backends, n, None) for n in ("detector", "attributes", "orientation", "action",
                                                  "scene")] + list(more)
    seen = set()
    for o in objs:
        usage = getattr(o, "usage", None)
        if usage is None or id(usage) in seen or not hasattr(usage, "snapshot"):
            continue
        seen.add(id(usage))
        for model, row in usage.snapshot().items():
            acc = out.setdefault(model, {})
            for k, v in row.items():
                acc[k] = acc.get(k, 0) + int(v)
    return out


def usage_delta(before: dict, after: dict) -> dict:
    """This job's share of the counters (backends are reused across jobs)."""
    delta = {}
    for model, row in after.items():
        d = {k: v - before.get(model, {}).get(k, 0) for k, v in row.items()}
        if any(d.values()):
            delta[model] = d
    return delta
