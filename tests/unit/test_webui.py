"""The dashboard's files: served with a strict CSP, every module the page imports exists,
and no script builds HTML from strings (what the API returns is only ever text)."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from api.routes.webui import STATIC

DASHBOARD = STATIC / "dashboard"
IMPORT = re.compile(r"""^import .* from "(\./[^"]+|\.\./[^"]+)";$""", re.M)


def test_the_root_and_the_dashboard_path_lead_to_the_page(client: TestClient) -> None:
    for path in ("/", "/dashboard"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 307 and answer.headers["location"] == "/dashboard/"
    page = client.get("/dashboard/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe" not in policy
    assert "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"


def test_every_script_the_page_loads_is_served(client: TestClient) -> None:
    page = client.get("/dashboard/").text
    sources = re.findall(r'<script[^>]*src="([^"]+)"', page)
    assert "/dashboard/vendor/chart.umd.min.js" in sources
    assert len(sources) == len(re.findall(r"<script", page)), "no inline scripts (CSP)"
    pending = [s for s in sources if s.endswith("app.js")]
    seen: set[str] = set()
    while pending:
        url = pending.pop()
        if url in seen:
            continue
        seen.add(url)
        answer = client.get(url)
        assert answer.status_code == 200, url
        assert "javascript" in answer.headers["content-type"]
        base = url.rsplit("/", 1)[0]
        for target in IMPORT.findall(answer.text):
            pending.append(str(Path(base) / target).replace("/./", "/").replace("\\\\", "/"))
    assert len(seen) >= 9, seen  # app, lib, i18n and the seven views


def test_no_script_turns_strings_into_html() -> None:
    for script in DASHBOARD.rglob("*.js"):
        text = script.read_text()
        for risky in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert risky not in text, f"{script.name} uses {risky}"


def test_both_languages_have_every_label() -> None:
    text = (DASHBOARD / "i18n.js").read_text()
    labels = text.split("const LABELS = {")[1].split("\n};")[0]
    english, turkish = labels.split("\n  tr: {")
    keys = {
        name: set(re.findall(r"^    (\w+):", part, re.M))
        for name, part in (("en", english), ("tr", turkish))
    }
    assert keys["en"] == keys["tr"], keys["en"] ^ keys["tr"]
    used = {
        key
        for script in DASHBOARD.rglob("*.js")
        for key in re.findall(r'\bt\("(\w+)"', script.read_text())
    }
    assert used <= keys["en"], used - keys["en"]
