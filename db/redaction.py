"""Secrets out of connection strings and of messages that quote one, found with real parsers:
psycopg's ``conninfo_to_dict`` for a whole key=value DSN, ``urllib.parse`` for a URL's query, and
for a URL's user info the rule libpq's users expect: the password runs from the first ``:`` after
``scheme://`` to the **last** ``@`` of the URL (a ``/``, ``@``, ``?`` or ``#`` may be in it)."""
from __future__ import annotations

import logging
import re
from urllib.parse import unquote

MASK = "***"
#: Parameter names whose value is a secret (password, sslpassword, passwd, api_key, token...).
_SECRET_NAME = re.compile(r"(?i)^\w*(?:pass(?:word|wd)?|secret|api[_-]?key|token)$")
_SECRET_KEYS = r"\w*(?:pass(?:word|wd)?|secret|api[_-]?key|token)"
#: key=value pairs in free text (a DSN quoted inside a message): quoted ('a b\'c') or bare.
_KV_QUOTED = re.compile(rf"(?i)\b({_SECRET_KEYS})(\s*=\s*)'(?:[^'\\]|\\.)*'?")
_KV_BARE = re.compile(rf"(?i)\b({_SECRET_KEYS})(\s*=\s*)(?!\*\*\*)[^\s&'\"]+")
#: A URL inside a message: scheme://... up to white space.
_URL = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://\S+")


def _is_secret(name: str) -> bool:
    return bool(_SECRET_NAME.match(unquote(name).strip()))


def _redact_query(query: str) -> str:
    """``a=1&password=x`` -> ``a=1&password=***`` (names decoded as ``urllib.parse`` does)."""
    parts = []
    for pair in query.split("&"):
        name, eq, _ = pair.partition("=")
        parts.append(f"{name}={MASK}" if eq and _is_secret(name) else pair)
    return "&".join(parts)


def redact_url(url: str) -> str:
    """One URL with its password (user info up to the last ``@``) and secret query values
    masked; everything else as it was."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    at = rest.rfind("@")
    if at >= 0:
        userinfo, hostpart = rest[:at], rest[at + 1:]
        user, colon, _ = userinfo.partition(":")
        if colon:
            rest = f"{user}:{MASK}@{hostpart}"
    # the query of what follows the host: ?a=b&password=c#frag
    head, q, query = rest.partition("?")
    if q:
        query, h, frag = query.partition("#")
        rest = f"{head}?{_redact_query(query)}{h}{frag}"
    return f"{scheme}://{rest}"


def _dsn_secrets(text: str) -> list[str]:
    """The secret values of a whole key=value DSN, parsed by libpq (through psycopg); [] when
    ``text`` is not one (a message, a fragment: the text rules apply)."""
    if "=" not in text or "://" in text:
        return []
    try:
        from psycopg.conninfo import conninfo_to_dict

        params = conninfo_to_dict(text)
    except Exception:  # noqa: BLE001 - not a DSN
        return []
    return [str(v) for k, v in params.items() if _is_secret(k) and v and len(str(v)) >= 4]


def redact(text: str) -> str:
    """``text`` (a connection string, or a message that may quote one) without passwords, in
    every form libpq accepts: URL ``user:pw@`` (``/`` and ``@`` in the password included), URL
    query ``password=``, key=value ``password=`` (bare or quoted)."""
    out = str(text)
    secrets = _dsn_secrets(out.strip())
    out = _URL.sub(lambda m: redact_url(m.group(0)), out)
    out = _KV_QUOTED.sub(rf"\1\2{MASK}", out)
    out = _KV_BARE.sub(rf"\1\2{MASK}", out)
    for v in sorted(secrets, key=len, reverse=True):
        out = out.replace(v, MASK)
    return out


def secret_values(conninfo: str) -> list[str]:
    """The secret values a connection string holds (raw and percent-decoded), longest first, for
    scrubbing messages that quote fragments of it (libpq's parse errors do)."""
    found: set[str] = set()
    scheme, sep, rest = conninfo.partition("://")
    if sep:
        at = rest.rfind("@")
        user, colon, pw = rest[:at].partition(":") if at >= 0 else ("", "", "")
        if colon and pw:
            found.update({pw, unquote(pw)})
            found.update(p for p in re.split(r"[/@?#:]", pw) if len(p) >= 3)
        _, q, query = rest.partition("?")
        for pair in query.split("&") if q else ():
            name, eq, value = pair.partition("=")
            if eq and value and _is_secret(name):
                found.update({value, unquote(value)})
    else:
        for m in re.finditer(rf"(?i)\b{_SECRET_KEYS}\s*=\s*('(?:[^'\\]|\\.)*'?|[^\s'\"]+)",
                             conninfo):
            v = m.group(1).strip("'")
            if v:
                found.add(v)
    return sorted((v for v in found if v), key=len, reverse=True)


def misquoted_password(conninfo: str) -> bool:
    """Whether a URL's password holds a raw ``/``, ``@``, ``?`` or ``#``: libpq then reads part
    of the password as the host, port or database (it must be percent-encoded)."""
    _, sep, rest = conninfo.partition("://")
    at = rest.rfind("@") if sep else -1
    _, colon, pw = rest[:at].partition(":") if at >= 0 else ("", "", "")
    return bool(colon) and any(c in pw for c in "/@?#")


def scrub(text: str, conninfo: str) -> str:
    """``redact(text)``, and every secret value of ``conninfo`` removed wherever it appears."""
    out = redact(text)
    for v in secret_values(conninfo):
        out = out.replace(v, MASK)
    return out


class RedactingFilter(logging.Filter):
    """A logging filter that redacts connection-string secrets from every record it sees
    (installed on the root handlers by the CLI and the app)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record: leave it to logging
            return True
        clean = redact(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info, record.exc_text = None, text
        return True


def install_log_redaction() -> None:
    """Redact secrets in everything the root logger's handlers write (idempotent)."""
    root = logging.getLogger()
    for h in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in h.filters):
            h.addFilter(RedactingFilter())


def one_line(err: BaseException, limit: int = 500) -> str:
    """``err`` on one line, secrets redacted, at most ``limit`` characters (or its type)."""
    return redact(" ".join(str(err).split()))[:limit] or type(err).__name__
