"""Video analysis workbench: ``streamlit run app.py``.

The entry file only routes (``st.navigation``) and shows, in the sidebar, what the background
worker is doing on every page. Each page is a script in ``app_pages/`` that talks to
``services.workbench`` only; the settings, database and worker are process-wide objects held in
``st.cache_resource`` (``app_pages/_resources.py``).
"""
from __future__ import annotations

import streamlit as st

from app_pages import _access as auth
from app_pages import _resources as res
from services import workbench as wb

# A local icon: a Material icon as the tab icon is fetched from a font host, and the workbench
# contacts no outside host.
st.set_page_config(page_title="Video analysis workbench", page_icon=res.ICON, layout="wide")

PAGES = [
    st.Page("app_pages/analyze.py", title="Analyze", icon=":material/play_circle:", default=True),
    st.Page("app_pages/review.py", title="Review", icon=":material/fact_check:"),
    st.Page("app_pages/events.py", title="Events", icon=":material/table_chart:"),
    st.Page("app_pages/search.py", title="Search", icon=":material/search:"),
    st.Page("app_pages/video.py", title="Video detail", icon=":material/movie:"),
]
ADMIN = st.Page("app_pages/admin.py", title="Admin", icon=":material/admin_panel_settings:")
# Sign-in before anything: a browser that is not signed in gets the sign-in form and nothing else
# (the pages stay routable but hidden, so a deep link lands on its page after signing in). Every
# page checks the role again, and so does every action in the services.
who = auth.identify()
admin = who is not None and who.may(wb.Role.ADMIN)
page = st.navigation(PAGES + ([ADMIN] if admin or who is None else []),
                     position="sidebar" if who is not None else "hidden")
res.fresh_job_views()  # the sidebar and the page share one read of the job views
res.services()  # settings + database: a setup problem is one plain error here, and stops
if who is None:
    auth.sign_in_page()
    st.stop()


# Same refresh and the same job views (res.job_views) as the Analyze and Video pages, so the
# bars agree, and a finished job never keeps a bar.
@st.fragment(run_every=1.0)
def _sidebar_jobs() -> None:
    """Running and queued analyses, visible (and live) on every page."""
    auth.live_check()
    svc = res.services()
    try:
        res.runner()  # the local worker runs from the first page shown
        jobs = [j for j in res.job_views(svc.settings) if j.show_bar]
    except wb.USER_ERRORS as e:
        st.caption(f"Job status unavailable: {wb.text.error_text(e)}")
        return
    if not jobs:
        st.caption("No analysis running.")
        return
    st.caption(f"{len(jobs)} analysis job(s) active")
    for j in jobs[:5]:
        st.progress(min(1.0, j.percent / 100.0),
                    text=f"{wb.text.md_text(j.name)}: {j.progress_text}")


with st.sidebar:
    auth.sidebar(who)
    _sidebar_jobs()

page.run()
