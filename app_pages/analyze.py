"""Analyze: pick a video (library folder, S3 ``videos/``, or an upload), choose options, start it
in the background, watch the live progress and cancel it. Nothing here blocks: the work runs on
a worker (this process's own, or ``python -m pipeline worker`` anywhere), and the job's state is
read back from the database every second."""
from __future__ import annotations

import streamlit as st

from app_pages import _access as auth
from app_pages import _resources as res
from services import workbench as wb

md = wb.text.md_text

who = auth.require(wb.Role.VIEWER)
# Viewers see the library, the queue and the results; launch, cancel and upload are analysts',
# deletion admins'. Hiding the controls is for clarity: the services refuse them all the same.
can_run, can_delete = who.may(wb.Role.ANALYST), who.may(wb.Role.ADMIN)
svc = res.services()
settings = svc.settings
runner = res.runner()


caps = res.capabilities(settings)

st.title("Analyze a video")

if caps.notes:
    with st.expander("What needs Bedrock or the VLM (not configured here)", expanded=False,
                     icon=":material/info:"):
        for note in caps.notes:
            st.markdown(f"- {note}")

# --- 1. the video -------------------------------------------------------------------------------
origins = []
if caps.library:
    origins.append("Library folder")
try:
    stored = res.stored_videos(svc)
    stored_error = None
except wb.USER_ERRORS as e:
    stored, stored_error = [], e
STORED_LABEL = "S3 bucket" if caps.s3_videos else "Uploaded earlier"
if caps.s3_videos or stored:
    origins.append(STORED_LABEL)
if can_run:
    origins.append("Upload")

left, right = st.columns([3, 2], gap="large")
with left:
    st.subheader("1. Video")
    origin = st.radio("Where is the video?", origins, horizontal=True, key="analyze.origin")
    source: wb.VideoSource | None = None
    upload = None
    if origin == "Library folder":
        try:
            lib = wb.library_videos(settings)
        except wb.USER_ERRORS as e:
            res.show_error(e, "The library folder cannot be read")
            lib = []
        if lib:
            labels = [v.label for v in lib]
            choice = st.selectbox("Video in the library folder", labels, key="analyze.library")
            source = lib[labels.index(choice)]
        else:
            st.info(f"No videos in the library folder {settings.library_dir}. Copy .mp4/.avi "
                    f"files there, or upload one.")
    elif origin == STORED_LABEL:
        if stored_error is not None:
            res.show_error(stored_error, "The stored videos cannot be listed")
        if stored:
            labels = [v.label for v in stored]
            where = (f"s3://{settings.s3_bucket_videos}/videos/" if caps.s3_videos
                     else "the workbench's storage")
            choice = st.selectbox(f"Video in {where}", labels, key="analyze.stored")
            source = stored[labels.index(choice)]
        elif stored_error is None:
            st.info(f"No videos under s3://{settings.s3_bucket_videos}/videos/ yet.")
    else:
        upload = st.file_uploader("Upload a video", key="analyze.upload",
                                  type=[e.lstrip(".") for e in wb.VIDEO_EXTENSIONS])
    if source is not None:
        facts = wb.housekeeping.source_facts(settings, source.uri)
        if facts is not None:
            st.caption(f"{wb.text.md_text(source.label)}: {facts.text}.")
        elif source.origin == "s3":
            st.caption("Its length and frame rate are read after it is downloaded.")
        else:
            st.warning("This file cannot be read as a video or photo; delete it or pick another.")
        if can_delete and source.is_upload:
            with st.popover("Delete this upload", icon=":material/delete:"):
                st.caption("Removes the uploaded file (and nothing else).")
                if st.button("Delete the file", key="analyze.delete_upload", type="primary"):
                    try:
                        wb.housekeeping.delete_upload(settings, source.uri,
                                                      actor=auth.session())
                        res.forget_stored_videos()
                        st.rerun()
                    except wb.USER_ERRORS as e:
                        res.show_error(e, "Could not delete it")
    if not caps.library and origin != "Library folder":
        st.caption("Tip: set VA_LIBRARY_DIR to a folder of videos to pick them here without "
                   "uploading.")

with right:
    st.subheader("2. Options")
    if not can_run:
        st.info(f"You are signed in as a {who.role.value}: you can follow the analyses and "
                f"browse the results. Analysts start and cancel analyses.",
                icon=":material/visibility:")
if can_run:
    with right:
        sample_fps = st.number_input(
            "Sampled frames per second", min_value=0.1, max_value=30.0,
            value=float(settings.sample_fps), step=0.5, format="%.1f", key="analyze.sample_fps",
            help="1.5 = every 20th frame of a 30 fps video, every 7th of a 10 fps camera. Higher is "
                 "slower and finer.")
        if settings.frame_skip is not None:
            st.caption(f"VA_FRAME_SKIP={settings.frame_skip} is set: "
                       f"{wb.timefmt.every_nth(settings.frame_skip)} is analysed whatever the rate.")
        if source is not None:
            est = wb.estimate_source(settings, source.uri, float(sample_fps))
            if est is not None:
                how = " (a short clip: analysed densely for fights)" if est.dense else ""
                st.caption(f"{est.frames_sampled} sampled frames, "
                           f"{wb.timefmt.every_nth(est.frame_skip)}{how}; about {wb.mmss(est.seconds)} to analyse and store on 2 CPU "
                           f"cores.")
        device = st.selectbox("Device", caps.devices, key="analyze.device",
                              help="cuda is offered only when a GPU is visible.")
        with st.expander("Models", expanded=False):
            def pick(label: str, choices: tuple[str, ...], current: str, key: str) -> str:
                idx = choices.index(current) if current in choices else 0
                return st.selectbox(label, choices, index=idx, key=key,
                                    disabled=len(choices) == 1,
                                    help=None if len(choices) > 1 else
                                    "Other models appear here when their weights are configured.")

            detector = pick("People detector", caps.detector, settings.detector, "analyze.detector")
            attributes = pick("Age and gender", caps.attributes, settings.attributes,
                              "analyze.attributes")
            orientation = pick("Orientation", caps.orientation, settings.orientation,
                               "analyze.orientation")
            action = pick("Actions", caps.action, settings.action, "analyze.action")
            scene = pick("Scene descriptions", caps.scene, settings.scene, "analyze.scene")

        if source is not None:  # a re-run: say what happens to the analysts' marks first
            marks_note = wb.review.marks_before_rerun(settings, source.uri)
            if marks_note:
                st.warning(md(marks_note), icon=":material/rate_review:")
        if st.button("Start analysis", type="primary", key="analyze.start",
                     icon=":material/play_arrow:", width="stretch"):
            options = wb.AnalysisOptions(sample_fps=float(sample_fps), device=device, detector=detector,
                                         attributes=attributes, orientation=orientation,
                                         action=action, scene=scene)
            try:
                if upload is not None:
                    source = wb.save_upload(svc, upload.name, upload.getvalue(),
                                            actor=auth.session())
                    res.forget_stored_videos()
                if source is None:
                    st.warning("Pick or upload a video first.")
                else:
                    vid = wb.launch(runner, source, options, actor=auth.session())
                    res.fresh_job_views()
                    st.session_state["analyze.video_id"] = vid
                    st.session_state["video.id"] = vid
                    st.toast(f"Queued {md(source.label)} (video {vid})", icon=":material/schedule:")
            except wb.USER_ERRORS as e:
                res.show_error(e, "Could not start the analysis")

st.divider()


# --- 3. live progress and the queue ------------------------------------------------------------
@st.fragment(run_every=1.0)
def live_jobs() -> None:
    auth.live_check()
    try:
        jobs = res.job_views(settings)
    except wb.USER_ERRORS as e:
        res.show_error(e, "Cannot read the job list")
        return
    _progress_bars([j for j in jobs if j.show_bar])
    _last_outcome(jobs)
    st.subheader("Queue and history")
    if not jobs:
        st.info("No videos analysed yet. Pick a video above and press Start analysis.")
        return
    _history_table(jobs)
    if can_delete:  # clearing and deleting are admins' (and the services refuse anyone else)
        _admin_tools(jobs)


def _progress_bars(active) -> None:
    """Each queued or running job: its bar, and Cancel for an analyst."""
    st.subheader("3. Progress")
    if not active:
        st.caption("No analysis is running. Finished jobs are listed below.")
    for j in active:
        c1, c2 = st.columns([6, 1], vertical_alignment="bottom")
        with c1:
            st.markdown(f"**{md(j.name)}** (video {j.video_id}) — {j.status_text}")
            st.progress(min(1.0, j.percent / 100.0), text=j.progress_text)
        with c2:
            if can_run and st.button("Cancel", key=f"analyze.cancel.{j.video_id}",
                                     icon=":material/stop_circle:"):
                try:
                    if not wb.cancel_analysis(runner, j.video_id, actor=auth.session()):
                        st.warning("This job is no longer queued or running.")
                except wb.USER_ERRORS as e:
                    res.show_error(e, "Could not cancel it")
                res.fresh_job_views()


def _last_outcome(jobs) -> None:
    """How the job started in this session ended; after a reload (a new session) the newest
    job's, so its outcome and links are not lost."""
    last = st.session_state.get("analyze.video_id") or (jobs[0].video_id if jobs else None)
    done = next((j for j in jobs if j.video_id == last and not j.active), None)
    if done is not None:
        if done.status is wb.JobStatus.COMPLETED and done.last_attempt_status is not None:
            # A re-run that failed or was cancelled: the earlier result is still the video's.
            st.warning(f"The latest analysis of {md(done.name)} was "
                       f"{done.last_attempt_status.value}: "
                       f"{md(done.last_attempt_error or 'no reason recorded')}. The earlier "
                       f"completed result is kept "
                       f"({wb.timefmt.counted(done.n_events or 0, 'event')}).",
                       icon=":material/history:")
        elif done.status is wb.JobStatus.COMPLETED:
            if done.warning:
                st.warning(f"{md(done.name)}: {md(done.warning)}", icon=":material/warning:")
            st.success(f"{md(done.name)} is done: {wb.timefmt.counted(done.n_events or 0, 'event')}.",
                       icon=":material/check_circle:")
            c1, c2, c3 = st.columns(3)
            c1.page_link("app_pages/review.py", label="Review the incidents",
                         icon=":material/photo_library:")
            c2.page_link("app_pages/events.py", label="Open events and charts",
                         icon=":material/table_chart:")
            c3.page_link("app_pages/video.py", label="Open the video", icon=":material/movie:")
        elif done.status is wb.JobStatus.FAILED:
            st.error(f"{md(done.name)} failed: {md(done.error or 'no reason recorded')}")
        elif done.status is wb.JobStatus.CANCELLED:
            st.warning(f"{md(done.name)} was cancelled.")


def _history_table(jobs) -> None:
    st.dataframe(
        [{"video": j.video_id, "name": j.name, "status": j.status_text,
          "progress": round(j.percent),
          "stage": j.stage_text, "count": j.count_text,
          "ETA": wb.mmss(j.eta_s) if j.active and j.eta_s is not None else "",
          "events": j.n_events or 0, "attempts": j.attempts, "worker": j.worker or "",
          "problem": j.error or ""} for j in jobs],
        hide_index=True, width="stretch",
        column_config={"progress": st.column_config.ProgressColumn(
            "progress", min_value=0, max_value=100, format="%d%%")},
        key="analyze.queue")


def _admin_tools(jobs) -> None:
    """Clear failed jobs; delete a video (typed name to confirm). Admins only."""
    h1, h2 = st.columns([1, 2], vertical_alignment="bottom")
    failed = [j for j in jobs if j.status in (wb.JobStatus.FAILED, wb.JobStatus.CANCELLED)]
    if h1.button(f"Clear failed jobs ({len(failed)})", key="analyze.clear_failed",
                 icon=":material/delete_sweep:", disabled=not failed):
        try:
            n = wb.housekeeping.clear_failed(settings, actor=auth.session())
            res.forget_stored_videos()
            st.toast(f"Cleared {wb.timefmt.counted(n, 'failed job')}.")
            st.rerun()
        except wb.USER_ERRORS as e:
            res.show_error(e, "Could not clear the failed jobs")
    idle = [j for j in jobs if not j.active]
    with h2.popover("Delete a video", icon=":material/delete:", disabled=not idle):
        pick = st.selectbox("Video", [j.video_id for j in idle], key="analyze.delete_pick",
                            format_func=lambda i: next(f"{j.name} (video {i})" for j in idle
                                                       if j.video_id == i))
        name = next((j.name for j in idle if j.video_id == pick), "")
        st.caption("Deletes its events, search vectors, tracks, review marks and highlight "
                   "frames; an uploaded file too. A library or S3 source stays. The deletion "
                   "is recorded in the audit trail.")
        typed = st.text_input(f"Type the video's name ({name}) to confirm",
                              key=f"analyze.delete_confirm.{pick}")
        if st.button("Delete", key="analyze.delete_video", type="primary",
                     disabled=typed.strip() != name):
            try:
                st.toast(wb.housekeeping.delete_video(settings, int(pick), actor=auth.session(),
                                                      confirm_name=typed))
                res.forget_stored_videos()
                st.rerun()
            except wb.USER_ERRORS as e:
                res.show_error(e, "Could not delete it")


live_jobs()
