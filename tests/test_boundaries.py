"""Architecture rules (STYLE.md): pages import only the service layer; the engine knows nothing
of Streamlit, the database, services or boto3; db imports only records and settings; nothing but
settings.py reads os.environ; product code never refers to ../shared."""
import ast
import re
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]


def _py(folder: str) -> list[Path]:
    p = REPO / folder
    return sorted(p.rglob("*.py")) if p.is_dir() else ([p] if p.exists() else [])


def _imports(path: Path, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def test_pipeline_never_imports_ui_db_or_services():
    bad = []
    for f in _py("pipeline"):
        if f.name == "__main__.py":  # the CLI entry point is a composition root
            continue
        found = _imports(f, top_level_only=False) & {"streamlit", "db", "services"}
        # boto3 only inside a backend's function (lazy), never at module level
        found |= _imports(f, top_level_only=True) & {"boto3", "botocore"}
        if found:
            bad.append(f"{f.relative_to(REPO)}: {sorted(found)}")
    assert not bad, bad


def test_pages_import_only_the_service_layer():
    bad = []
    for f in _py("app_pages") + _py("app.py"):
        found = _imports(f, top_level_only=False) & {"pipeline", "db", "settings"}
        if found:
            bad.append(f"{f.relative_to(REPO)}: {sorted(found)}")
    assert not bad, bad


def test_services_never_import_streamlit():
    """services/ is plain Python; st.cache_resource wrappers live in app_pages/_resources.py."""
    bad = [str(f.relative_to(REPO)) for f in _py("services")
           if "streamlit" in _imports(f, top_level_only=False)]
    assert not bad, bad


def test_streamlit_caches_live_in_resources():
    """Process-wide objects are made in one place (app_pages/_resources.py), not per page."""
    cached = re.compile(r"@st\.cache_(resource|data)\b")
    bad = [str(f.relative_to(REPO)) for f in _py("app_pages") + _py("app.py")
           if f.name != "_resources.py" and cached.search(f.read_text())]
    assert not bad, bad


def test_no_patch_of_streamlit_internals():
    """Only Streamlit's public API: no imports from streamlit.runtime (or other internals)."""
    bad = []
    for folder in ("app_pages", "app.py", "services"):
        for f in _py(folder):
            for node in ast.walk(ast.parse(f.read_text())):
                mods = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                        [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                bad += [f"{f.relative_to(REPO)}: {m}" for m in mods
                        if m.startswith("streamlit.") and m not in ("streamlit.testing.v1",)]
    assert not bad, bad


def test_db_imports_only_records_and_settings():
    bad = []
    for f in _py("db"):
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                mod = node.module
                if mod.split(".")[0] in {"pipeline", "services", "streamlit"} and mod not in {
                    "pipeline.records", "pipeline.errors"}:
                    bad.append(f"{f.relative_to(REPO)}: {mod}")
    assert not bad, bad


def test_only_settings_reads_environment():
    bad = []
    for folder in ("pipeline", "db", "services", "app_pages", "app.py"):
        for f in _py(folder):
            text = f.read_text()
            # Setting a variable for a library (HF_HUB_OFFLINE=1) is allowed; reading is not.
            if re.search(r"os\.getenv\(|os\.environ\.get\(|os\.environ\[[^\]]+\](?!\s*=)|"
                         r"dict\(os\.environ\)", text):
                bad.append(str(f.relative_to(REPO)))
    assert not bad, f"read the environment through settings.Settings only: {bad}"


def test_product_code_does_not_need_shared_folder():
    bad = [str(f.relative_to(REPO)) for folder in ("pipeline", "db", "services", "app_pages", "app.py")
           for f in _py(folder)
           if "../shared" in f.read_text() and "bench" not in f.name]
    assert not bad, bad


def test_product_modules_stay_small():
    """A module over 450 lines holds more than one concern: split it (see README, Layout)."""
    big = [f"{f.relative_to(REPO)}: {n}" for folder in ("pipeline", "db", "services", "app_pages",
                                                         "app.py", "settings.py")
           for f in _py(folder) if (n := len(f.read_text().splitlines())) > 450]
    assert not big, big


def _sql_text(path: Path) -> str:
    """The module's string literals joined (SQL is written as adjacent literals)."""
    tree = ast.parse(path.read_text())
    return " ".join(n.value for n in ast.walk(tree)
                    if isinstance(n, ast.Constant) and isinstance(n.value, str))


def test_job_status_has_one_writer():
    """An attempt's life (status, progress, stage, reason) is written by db/attempts.py only."""
    update = re.compile(r"UPDATE\s+(db_video|db_run)\b(.*?)(\bWHERE\b|\bFROM\b|$)", re.S | re.I)
    life = re.compile(r"\b(analysis_status|status|analysis_progress|stage|error_message)\s*=")
    queue_end = re.compile(r"procrastinate_(retry|finish)_job")  # a queue job's end, by SQL
    bad = []
    for folder in ("pipeline", "db", "services", "app_pages", "app.py", "scripts"):
        for f in _py(folder):
            if f.relative_to(REPO).as_posix() == "db/attempts.py":
                continue
            sql_text = _sql_text(f)
            for m in update.finditer(sql_text):
                if life.search(m.group(2)):
                    bad.append(f"{f.relative_to(REPO)}: UPDATE {m.group(1)} {m.group(2)[:60]}")
            bad += [f"{f.relative_to(REPO)}: {m.group(0)}" for m in queue_end.finditer(sql_text)]
    assert not bad, f"change a job's status through db.attempts.JobAttempt: {bad}"


def test_source_uris_parsed_in_one_place():
    """``s3://`` / ``local:`` URIs are parsed by services/media/source_uri.py's ``SourceUri`` only."""
    check = re.compile(r"""startswith\(\(?\s*["'](s3://|local:)""")
    bad = [str(f.relative_to(REPO)) for folder in ("pipeline", "db", "services", "app_pages",
                                                    "app.py", "settings.py")
           for f in _py(folder)
           if f.relative_to(REPO).as_posix() != "services/media/source_uri.py"
           and check.search(f.read_text())]
    assert not bad, f"parse a source with services.media.source_uri.SourceUri: {bad}"


def test_no_product_function_over_80_lines():
    """A function a reader cannot hold at once (over 80 lines, decorators and docstring
    included) is split into steps that can be named."""
    long = []
    for folder in ("pipeline", "db", "services", "app_pages", "app.py", "settings.py"):
        for f in _py(folder):
            for node in ast.walk(ast.parse(f.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    n = node.end_lineno - node.lineno + 1
                    if n > 80:
                        long.append(f"{f.relative_to(REPO)}:{node.name}: {n} lines")
    assert not long, long


def test_comments_say_why_not_history():
    """Which issue or defect led to a line is in git and the model cards; a comment says why the
    code is as it is."""
    history = re.compile(r"\b(issue|defect) \d+", re.I)
    bad = [f"{f.relative_to(REPO)}:{i}" for folder in ("pipeline", "db", "services",
                                                       "app_pages", "app.py", "settings.py")
           for f in _py(folder)
           for i, line in enumerate(f.read_text().splitlines(), 1) if history.search(line)]
    assert not bad, bad


def test_services_are_grouped_by_concern():
    """services/ keeps its packages (jobs, media, search, review, access) and a few shared
    modules at the top; a new module goes into the package of its concern."""
    shared = {"__init__", "workbench", "cli", "setup", "database", "errors", "capabilities",
              "text", "timefmt", "vocab", "records"}
    top = {f.stem for f in (REPO / "services").glob("*.py")}
    assert top <= shared, f"put these in a package of services/: {sorted(top - shared)}"
    for pkg in ("jobs", "media", "search", "review", "access"):
        assert (REPO / "services" / pkg / "__init__.py").is_file(), pkg
