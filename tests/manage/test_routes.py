"""``GET /manage`` and its files, without a browser: what is served, with which headers."""

from __future__ import annotations

import re
from importlib import resources

import httpx

from app.manage.routes import STATIC

FILES = ("index.html", "manage.css", "app.js", "api.js", "format.js")


async def test_page_is_served_with_a_self_only_policy(client: httpx.AsyncClient) -> None:
    r = await client.get("/manage")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    policy = r.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in policy
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "Manage Seats" in r.text


async def test_page_files_are_served_from_the_package(client: httpx.AsyncClient) -> None:
    for name in FILES:
        r = await client.get(f"/manage/static/{name}")
        assert r.status_code == 200, name
        assert r.content == (STATIC / name).read_bytes()
        assert "content-security-policy" in r.headers
    scripts = await client.get("/manage/static/app.js")
    assert "javascript" in scripts.headers["content-type"]  # served as a module can be


async def test_unknown_page_file_is_a_problem(client: httpx.AsyncClient) -> None:
    r = await client.get("/manage/static/nope.js")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")


def test_page_names_no_other_host() -> None:
    """No CDN, no font service, no analytics: nothing outside the service is referenced."""
    url = re.compile(r"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
    for name in FILES:
        text = (STATIC / name).read_text()
        assert not url.findall(text), (name, url.findall(text))
    # Inline scripts and styles would need 'unsafe-inline': there are none.
    html = (STATIC / "index.html").read_text()
    assert re.findall(r"<script\b[^>]*>", html) == [
        '<script type="module" src="/manage/static/app.js">'
    ]
    assert not re.search(r"<style\b", html)
    assert not re.search(r"\sstyle=", html)


def test_page_ships_inside_the_package() -> None:
    shipped = resources.files("app.manage").joinpath("static")
    assert sorted(p.name for p in shipped.iterdir() if p.name in FILES) == sorted(FILES)


async def test_page_is_not_in_the_api_document(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [p for p in paths if p.startswith("/manage")]
