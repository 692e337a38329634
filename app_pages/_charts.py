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
    """Actions over time per track, one panel per video (tracks of a video together)."""
    runs = action_runs(events)
    if runs.empty:
        return _empty("Actions over time", "No events to show")
    runs["duration_s"] = (runs["end_s"] - runs["start_s"]).clip(lower=0.1)
    runs["from"] = runs["start_s"].map(lambda t: wb.timefmt.clock(t, True))
    runs["to"] = runs["end_s"].map(lambda t: wb.timefmt.clock(t, True))
    runs["track"] = runs["track"].str.split(" · ").str[-1]
    videos = list(dict.fromkeys(runs["video"]))
    fig = px.bar(runs, base="start_s", x="duration_s", y="track", color="action",
                 orientation="h", facet_row="video" if len(videos) > 1 else None,
                 hover_data={"from": True, "to": True, "duration_s": False, "start_s": False,
                             "track": False},
                 category_orders={"action": _present(_ACTION_ORDER, runs["action"]),
                                  "video": videos},
                 color_discrete_map=ACTION_COLORS,
                 title="Actions over time per track" + (", by video" if len(videos) > 1
                                                        else f" ({videos[0]})"))
    fig.update_yaxes(matches=None, title_text="")  # each video shows only its own tracks
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=", 1)[-1]))
    n_rows = runs.groupby("video")["track"].nunique().sum()
    # The legend in a row above the plot: at the side, a short chart (one video, few tracks)
    # hid falling and lying behind a scrollbar.
    fig.update_layout(xaxis_title="time in the video (s)", barmode="overlay",
                      height=max(260, 34 * int(n_rows) + 90 * len(videos) + 60) + 40,
                      legend=dict(title_text="action", orientation="h", yanchor="bottom",
                                  y=1.02, xanchor="left", x=0), margin=dict(t=100))
    return fig


def action_seconds(events: pd.DataFrame) -> pd.DataFrame:
    """Seconds each action was seen, summed over the people (tracks) of person rows: the same
    whatever the sampling rate, unlike row counts."""
    people = (events[events["event_type"] == wb.EventType.PERSON.value] if not events.empty
              else events)
    runs = action_runs(people)
    if runs.empty:
        return pd.DataFrame(columns=["action", "seconds"])
    runs["seconds"] = (runs["end_s"] - runs["start_s"]).clip(lower=0.0)
    return runs.groupby("action", as_index=False)["seconds"].sum()


def counts_figure(events: pd.DataFrame) -> go.Figure:
    secs = action_seconds(events)
    if secs.empty:
        return _empty("Time per action", "No people to show")
    fig = px.bar(secs, x="action", y="seconds", color="action",
                 category_orders={"action": _present(_ACTION_ORDER, secs["action"])},
                 color_discrete_map=ACTION_COLORS, title="Time per action (person-seconds)")
    fig.update_traces(width=0.6)
    fig.update_layout(xaxis_title="action", yaxis_title="person-seconds", height=300,
                      showlegend=False, bargap=0.3)
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
    """Seconds people spent facing each way (bars: four directions need no radial labels)."""
    known = events.dropna(subset=["orientation"]) if not events.empty else events
    if known.empty:
        return _empty("Orientation", "No orientation estimates")
    known = known[known["event_type"] == wb.EventType.PERSON.value].sort_values(
        ["video_id", "obj_id", "t_s"])
    step = known.groupby(["video_id", "obj_id"])["t_s"].diff().fillna(0.0)
    step = step.where(step > 0, step[step > 0].median() if (step > 0).any() else 1.0)
    secs = step.groupby(known["orientation"].astype(int)).sum().reindex(list(wb.ORIENTATION_LABELS),
                                                                        fill_value=0.0)
    df = pd.DataFrame({"direction": [ORIENTATION_NAMES[k] for k in secs.index],
                       "seconds": secs.to_numpy()})
    fig = px.bar(df, x="seconds", y="direction", orientation="h",
                 title="Body orientation (person-seconds)")
    fig.update_traces(marker_color="#1f6feb", width=0.6)
    fig.update_layout(height=300, yaxis_title="", xaxis_title="person-seconds",
                      yaxis=dict(categoryorder="array",
                                 categoryarray=list(reversed(df["direction"]))))
    return fig


def video_timeline_figure(incidents, people: list[tuple[float, int]],
                          duration_s: float | None) -> go.Figure:
    """One video's timeline: its incidents as spans (click one to play it) above the number of
    people seen over time. ``incidents`` are ``services.review.review.Incident``s."""
    from plotly.subplots import make_subplots

    tf = wb.timefmt
    end = max([float(duration_s or 0.0)] + [i.end_s for i in incidents]
              + [t for t, _ in people] + [1.0])
    min_w = max(0.15, end / 150)  # an instant still shows as a clickable span
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.4, 0.6],
                        vertical_spacing=0.08)
    for kind in _present(list(EVENT_COLORS), [i.event.event_type.value for i in incidents]):
        mine = [i for i in incidents if i.event.event_type is wb.EventType(kind)]
        fig.add_trace(go.Bar(
            name=kind, orientation="h", y=[kind] * len(mine),
            base=[i.start_s for i in mine], x=[max(min_w, i.end_s - i.start_s) for i in mine],
            marker_color=EVENT_COLORS.get(kind, "#7f7f7f"),
            customdata=[[i.event_id] for i in mine],
            hovertext=[f"{kind} {i.time_text} · {i.tracks_text} · {i.state_label}"
                       for i in mine], hoverinfo="text"), row=1, col=1)
    if people:
        fig.add_trace(go.Scatter(
            name="people", x=[t for t, _ in people], y=[n for _, n in people],
            mode="lines", line_shape="hv", line_color="#1f6feb",
            hovertext=[f"{tf.at(t, duration_s)}: {n} people" for t, n in people],
            hoverinfo="text"), row=2, col=1)
    fig.update_xaxes(range=[0, end], row=1, col=1)
    fig.update_xaxes(range=[0, end], title_text="time in the video (s)", row=2, col=1)
    fig.update_yaxes(title_text="people", rangemode="tozero", row=2, col=1)
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=30, b=10), showlegend=False,
                      barmode="overlay", clickmode="event+select",
                      title=dict(text="Incidents (click one to play it) and people over time",
                                 font=dict(size=14)))
    if not incidents:
        fig.add_annotation(text="no incident", xref="x domain", yref="y domain", x=0.5, y=0.5,
                           showarrow=False, row=1, col=1)
    return fig
