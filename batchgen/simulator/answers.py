"""Complete HTTP answers (status, content type, headers, body bytes) and the non-JSON pages a
provider's edge sends: gin's plain-text 404, a redirect to the home page, Cloudflare's 524
page and a web front end's HTML served where JSON was expected (kling-api.md §17 E6). Pure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

JSON = "application/json"
GIN_JSON = "application/json; charset=utf-8"
HTML = "text/html; charset=utf-8"
TEXT = "text/plain"


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, ready to send."""

    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()

    def with_header(self, name: str, value: str) -> Answer:
        return replace(self, headers=(*self.headers, (name, value)))


def json_answer(status: int, value: Any, content_type: str = JSON) -> Answer:
    """`value` as compact JSON (non-ASCII text as UTF-8, as Go's encoder writes it)."""
    body = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    return Answer(status, body, content_type)


def gin_not_found() -> Answer:
    """What gin answers for a route it does not have."""
    return Answer(404, b"404 page not found", TEXT)


def moved_to(url: str) -> Answer:
    """A 301 to `url`, with the small body Go's http.Redirect writes."""
    body = f'<a href="{url}">Moved Permanently</a>.\n\n'.encode()
    return Answer(301, body, HTML, (("location", url),))


def timeout_page(host: str) -> Answer:
    """Cloudflare's 524: the origin took too long to answer (it may still have done the work)."""
    page = f"""<!DOCTYPE html>
<html lang="en-US">
<head><meta charset="UTF-8"><title>{host} | 524: A timeout occurred</title></head>
<body><div id="cf-error-details">
<h1>A timeout occurred <span>Error code 524</span></h1>
<p>The origin web server timed out responding to this request.</p>
<p>Cloudflare Ray ID: <strong>8f2c1a7e5b3d4c21</strong> &bull; Performance &amp; security by
Cloudflare</p>
</div></body>
</html>
"""
    return Answer(524, page.encode(), HTML)


def web_page(title: str) -> Answer:
    """A 200 HTML page: the provider's web front end, served where JSON was expected."""
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><noscript>You need to enable JavaScript to run this app.</noscript><div id="root"></div>
</body></html>
"""
    return Answer(200, page.encode(), HTML)
