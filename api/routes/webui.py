"""The web dashboard (``/dashboard``): static files, no build step, under a strict CSP.

The page is plain ES modules plus Chart.js (vendored: ``api/static/vendor``); it talks to the
same REST API with the token the user pastes, which stays in the tab's session storage.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parents[1] / "static"
# Only this origin's scripts and styles, no inline code, no framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/dashboard/")


@router.get("/dashboard")
async def dashboard_redirect() -> RedirectResponse:
    return RedirectResponse("/dashboard/")


@router.get("/dashboard/")
async def dashboard() -> FileResponse:
    return FileResponse(STATIC / "dashboard" / "index.html", headers=SECURITY_HEADERS)


def install(app: FastAPI) -> None:
    """The dashboard's routes and its static files on ``app``."""
    app.include_router(router)
    app.mount("/dashboard/assets", StaticFiles(directory=STATIC / "dashboard"), name="assets")
    app.mount("/dashboard/vendor", StaticFiles(directory=STATIC / "vendor"), name="vendor")
