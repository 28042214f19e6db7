"""The dashboard at `/ui`: a few static files from the package (no CDN, no build step), which read and
change everything through the admin API with the key the operator signs in with, so its permission checks
are the admin API's own (a team_admin sees its team).

The page, its script and its style are read once, on the first request for them, and served with a strict
content security policy: scripts and styles from this origin only, no inline code, no framing.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

_FILES = {
    "": ("index.html", b"text/html; charset=utf-8"),
    "app.js": ("app.js", b"text/javascript; charset=utf-8"),
    "charts.js": ("charts.js", b"text/javascript; charset=utf-8"),
    "app.css": ("app.css", b"text/css; charset=utf-8"),
}
_SECURITY = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        b"base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-cache"),  # revalidated on each load: a new release shows at once
]


class Dashboard:
    def __init__(self) -> None:
        self._cache: dict[str, bytes] = {}

    def handles(self, path: str) -> bool:
        return path == "/ui" or path.startswith("/ui/")

    async def __call__(self, scope: dict[str, Any], send: Any) -> None:
        name = scope["path"][len("/ui") :].lstrip("/")
        entry = _FILES.get(name)
        if scope["method"] not in ("GET", "HEAD") or entry is None:
            await _answer(send, 404, b"not found", b"text/plain; charset=utf-8")
            return
        body = self._cache.get(name)
        if body is None:
            body = self._cache[name] = resources.files("sluicegate.ui").joinpath(entry[0]).read_bytes()
        await _answer(send, 200, body if scope["method"] == "GET" else b"", entry[1], len(body))


async def _answer(send: Any, status: int, body: bytes, content_type: bytes, length: int | None = None) -> None:
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % (len(body) if length is None else length))]
    await send({"type": "http.response.start", "status": status, "headers": headers + _SECURITY})
    await send({"type": "http.response.body", "body": body})
