"""Plotly figures for the Events page, built from the event table the service layer returns
(``services.workbench.events_table``). Pure functions of a DataFrame: no Streamlit, no database."""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from services import workbench as wb

ORIENTATION_NAMES = {
    0: "0° facing the camera",
    90: "90° facing right",
    180: "180° back to the camera",
    270: "270° facing left",
}
_ACTION_ORDER = list(wb.ACTIONS)
ACTION_COLORS = wb.ACTION_COLOURS
EVENT_COLORS = wb.EVENT_COLOURS


def _present(order: list[str], values) -> list[str]:
    seen = set(map(str, values))
    return [a for a in order if a in seen] + sorted(seen - set(order))


def _empty(title: str, message: str) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=title, xaxis_visible=False, yaxis_visible=False, height=260,
                      annotations=[dict(text=message, showarrow=False, font=dict(size=14))])
    return fig


def action_runs(events: pd.DataFrame) -> pd.DataFrame:
    """Consecutive same-action stretches per track: video, track, action, start_s, end_s."""
    cols = ["video", "track", "action", "start_s", "end_s"]
    if events.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    df = events.sort_values(["video_id", "obj_id", "t_s"])
    for (_vid, obj), g in df.groupby(["video_id", "obj_id"], sort=False):
        times = g["t_s"].to_numpy(float)
        acts = g["action"].astype(str).to_numpy()
        step = float(pd.Series(times).diff().median()) if len(times) > 1 else 0.7
        step = step if step > 0 else 0.7
        start = 0
        for i in range(1, len(times) + 1):
            if i == len(times) or acts[i] != acts[start]:
                end = times[i] if i < len(times) else times[i - 1] + step
                rows.append((g["video"].iloc[0], f"{g['video'].iloc[0]} · track {obj}", acts[start],
                             times[start], end))
                start = i
    return pd.DataFrame(rows, columns=cols)


def timeline_figure(events: pd.DataFrame) -> go.Figure:
    runs = action_runs(events)
    if runs.empty:
        return _empty("Actions over time", "No events to show")
    runs["duration_s"] = (runs["end_s"] - runs["start_s"]).clip(lower=0.1)
    runs["from"] = runs["start_s"].map(wb.mmss)
    runs["to"] = runs["end_s"].map(wb.mmss)
    fig = px.bar(runs, base="start_s", x="duration_s", y="track", color="action",
                 orientation="h", hover_data={"from": True, "to": True, "duration_s": False,
                                              "start_s": False, "track": False},
                 category_orders={"action": _present(_ACTION_ORDER, runs["action"])},
                 color_discrete_map=ACTION_COLORS, title="Actions over time per track")
    fig.update_layout(xaxis_title="time in the video (s)", yaxis_title="", barmode="overlay",
                      height=max(260, 40 * runs["track"].nunique() + 120), legend_title="action")
    return fig


def counts_figure(events: pd.DataFrame) -> go.Figure:
    if events.empty:
        return _empty("Counts", "No events to show")
    counts = (events.groupby(["action", "event_type"]).size().reset_index(name="count"))
    fig = px.bar(counts, x="action", y="count", color="event_type", barmode="group",
                 category_orders={"action": _present(_ACTION_ORDER, counts["action"])},
                 color_discrete_map=EVENT_COLORS, title="Rows per action and event type")
    fig.update_layout(xaxis_title="action", yaxis_title="rows", height=320)
    return fig


def per_track(events: pd.DataFrame) -> pd.DataFrame:
    """One row per (video, track): its most frequent age group and gender."""
    if events.empty:
        return pd.DataFrame(columns=["video_id", "obj_id", "age_group", "gender"])
    return (events.groupby(["video_id", "obj_id"])
            .agg(age_group=("age_group", lambda s: s.mode().iloc[0]),
                 gender=("gender", lambda s: s.mode().iloc[0]))
            .reset_index())


def demographics_figure(events: pd.DataFrame) -> go.Figure:
    tracks = per_track(events)
    if tracks.empty:
        return _empty("Age group × gender", "No people to show")
    table = tracks.groupby(["age_group", "gender"]).size().reset_index(name="tracks")
    fig = px.bar(table, x="age_group", y="tracks", color="gender", barmode="group",
                 category_orders={"age_group": list(wb.AGE_GROUPS),
                                  "gender": list(wb.GENDERS)},
                 color_discrete_map=wb.GENDER_COLOURS,
                 title="People (tracks) by age group × gender")
    fig.update_layout(xaxis_title="age group (young < 30 ≤ middle < 60 ≤ old)",
                      yaxis_title="tracks", height=320)
    return fig


def orientation_figure(events: pd.DataFrame) -> go.Figure:
    known = events.dropna(subset=["orientation"]) if not events.empty else events
    if known.empty:
        return _empty("Orientation", "No orientation estimates")
    counts = known["orientation"].astype(int).value_counts().reindex(list(wb.ORIENTATION_LABELS),
                                                                         fill_value=0)
    df = pd.DataFrame({"direction": [ORIENTATION_NAMES[k] for k in counts.index],
                       "degrees": list(counts.index), "rows": counts.to_numpy()})
    fig = px.bar_polar(df, r="rows", theta="degrees", hover_name="direction",
                       title="Body orientation (0° = facing the camera)")
    fig.update_layout(height=340, polar=dict(angularaxis=dict(
        direction="clockwise", rotation=90, tickvals=[0, 90, 180, 270],
        ticktext=["facing camera", "facing right", "back", "facing left"])))
    return fig
