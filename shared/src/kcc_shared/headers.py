"""Security headers on every response of every KCC web app (API answers included).

The Content-Security-Policy allows scripts only from the app itself (files under its static
folders, never an inline <script> or an event-handler attribute), so an injected tag cannot run;
inline styles stay allowed (the pages carry a small <style> block and no user-written CSS).
frame-ancestors 'none' and X-Frame-Options keep the pages out of frames (clickjacking), nosniff
stops browsers guessing a script out of a JSON answer, and the Referer never leaves the site.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from flask import Flask, Response

__all__ = ["SECURITY_HEADERS", "add_security_headers"]

CONTENT_SECURITY_POLICY: Final = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS: Final[Mapping[str, str]] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def add_security_headers(app: Flask) -> None:
    """Set SECURITY_HEADERS on every response `app` sends (a view may set stricter ones)."""

    @app.after_request
    def _security_headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response
