"""Only the person who started the dashboard may use it: a per-launch access token, as Jupyter does.

Each launch makes a random token (or takes FACE_PRIVACY_TOKEN, for scripted use; the value `off`
turns the gate off, for a single-user machine). The link with the token is shown where the
dashboard was started: on the terminal when there is one, else in a file only its owner can
read (never in a log); the file has it in both cases, for a second launch to show. Its first
visit sets a cookie for that browser (HttpOnly, SameSite=Strict) and redirects to the same
address without the token, so the token stays out of the address bar,
the history and any page. Every request without a valid cookie, to any address of the server
(page, websocket, media, upload), gets only a short locked page; the health check answers
everyone, with nothing in it.

This is an ASGI middleware in front of Streamlit's own server (`st.App`, see app.py), so the
gate stands before any script runs or any file is served. It also keeps what the pages show out
of the browser's cache (`no_store`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sys
from contextlib import asynccontextmanager
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

COOKIE = "face_privacy_access"
TOKEN_ENV = "FACE_PRIVACY_TOKEN"
OPEN_PATHS = ("/_stcore/health", "/healthz")

LOCKED_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Face privacy review: locked</title>
<style>body{font-family:sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}</style>
</head><body><h1>This dashboard is locked</h1>
<p>Open the link printed where it was started (the terminal that ran
<code>streamlit run app.py</code>, or the file it named there).</p></body></html>"""


def _launch_token() -> str | None:
    configured = os.environ.get(TOKEN_ENV)
    if configured is not None:
        return None if configured.strip().lower() == "off" else configured.strip() or None
    return secrets.token_urlsafe(32)


TOKEN = _launch_token()


def _cookie_value(token: str) -> str:
    """What the browser keeps: derived from the token, never the token itself."""
    return hmac.new(token.encode(), b"face-privacy-dashboard-cookie", hashlib.sha256).hexdigest()


def valid_token(candidate: str | None) -> bool:
    return bool(TOKEN and candidate) and hmac.compare_digest(candidate.encode(), TOKEN.encode())


def cookie_name(scope) -> str:
    """The cookie of the dashboard on this port: a browser keeps cookies by host, not by port, so
    two dashboards (two workspaces) open in one browser each need their own name, or the second
    link opened replaces the first's and locks its tab out."""
    port = (scope.get("server") or ("", None))[1]
    return f"{COOKIE}_{port}" if port else COOKIE


def valid_cookie(header: str | None, name: str) -> bool:
    if not TOKEN or not header:
        return False
    try:
        jar = SimpleCookie(header)
    except Exception:  # noqa: BLE001 - a malformed cookie header is simply not a key
        return False
    value = jar[name].value if name in jar else ""
    return hmac.compare_digest(value.encode(), _cookie_value(TOKEN).encode())


def no_store(send):
    """`send` with every response marked `Cache-Control: no-store`: Streamlit serves the pictures a
    page shows (an original beside its cover, a face at full resolution, a clip's frame) as
    "public, immutable, max-age=31536000", so the reviewer's browser kept the originals on its
    disk for a year, beyond the workspace's private folder and its purge."""
    async def sending(message):
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"]
            message = {**message, "headers": headers + [(b"cache-control", b"no-store")]}
        await send(message)
    return sending


class AccessGate:
    """ASGI middleware: lets through only requests that carry the launch's cookie; nothing it
    lets through but the code of the pages (`/static/`) may be kept in the browser's cache."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and not scope.get("path", "").startswith("/static/"):
            send = no_store(send)
        if TOKEN is None or scope["type"] not in ("http", "websocket") or scope.get("path") in OPEN_PATHS:
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if valid_cookie(headers.get("cookie"), cookie_name(scope)):
            return await self.app(scope, receive, send)
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        offered = next((v for k, v in query if k == "token"), None)
        if scope["type"] == "http" and valid_token(offered):
            rest = urlencode([(k, v) for k, v in query if k != "token"])
            location = scope.get("root_path", "") + scope["path"] + (f"?{rest}" if rest else "")
            return await _respond(send, 303, b"", [
                (b"location", location.encode("latin-1")),
                (b"set-cookie", f"{cookie_name(scope)}={_cookie_value(TOKEN)}; Path=/; HttpOnly; "
                                "SameSite=Strict".encode()),
            ])
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            return await send({"type": "websocket.close", "code": 1008})
        return await _respond(send, 403, LOCKED_PAGE.encode(), [(b"content-type", b"text/html; charset=utf-8")])


async def _respond(send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": headers + [(b"content-length", str(len(body)).encode()),
                                      (b"cache-control", b"no-store"), (b"referrer-policy", b"no-referrer")]})
    await send({"type": "http.response.body", "body": body})


def link_file() -> Path:
    """Where the link goes when there is no terminal: in the workspace, readable by its owner.
    Each workspace has its own: two kept in one folder (a school's and a hospital's) wrote one
    file beside them, and the link in it opened whichever dashboard started last."""
    from core.workspace import default_root

    return default_root() / "dashboard-link.txt"


def announce(url: str, out=None) -> str:
    """Tell the person who started the dashboard what to open; returns what was said."""
    out = out or sys.stdout
    if TOKEN is None:
        message = f"Face privacy review: open {url} (access token turned off by {TOKEN_ENV}=off)"
    elif os.environ.get(TOKEN_ENV):
        message = f"Face privacy review: open {url}?token=<the value of {TOKEN_ENV}>"
    else:
        # Kept in a private file too, for a second launch to show (dashboard/launch.py).
        path = link_file()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{url}?token={TOKEN}\n")
        if out.isatty():
            message = f"Face privacy review: open {url}?token={TOKEN}"
        else:  # a log, not a person: the link is only in the file
            message = f"Face privacy review: the link to open is in {path} (readable by you only)"
    print(message, file=out, flush=True)
    return message


@asynccontextmanager
async def lifespan(_app):
    from streamlit import config

    from dashboard.launch import record_address

    address = config.get_option("server.address") or "127.0.0.1"
    url = f"http://{address}:{config.get_option('server.port')}/"
    announce(url)
    record_address(url)
    yield
