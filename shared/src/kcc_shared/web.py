"""Login for server-rendered pages: an API token once, then a signed session cookie and CSRF."""

# Usage (one call in create_app, one decorator per page, one field per form):
#
#     from kcc_shared.web import csrf_field, current_user, init_web, login_required
#
#     init_web(app, service="backoffice", roles=("staff", "ops", "admin"),
#              secret_key=config.secret_key, secure_cookie=config.session_cookie_secure,
#              home="/inbox")
#
#     @app.get("/inbox")
#     @login_required("staff", "ops", "admin")
#     def inbox() -> str:
#         user = current_user()           # a kcc_shared.auth.Principal
#         ...
#
#     <form method="post" action="...">{{ csrf_field() }} ...</form>
#
# What init_web gives the app:
# - GET/POST /login (endpoint "web.login"): a Dutch form where a person pastes their API token;
#   it is checked with the app's TokenStore (app.extensions[TOKENS_EXTENSION]) and the role
#   must be one of `roles`. The token itself is never stored in the cookie: the session holds
#   the principal and the token's id, and the token is re-checked for revocation every
#   `recheck_seconds`, so revoking a token also ends its web sessions.
# - POST /logout (endpoint "web.logout"): ends the session on the server and clears the cookie.
#   Each login is a row in `web_sessions` (beside the API tokens; the cookie holds a random
#   session id, the table its SHA-256) and every request checks that row, so a copied cookie
#   stops working at logout, in every process.
# - A signed Flask session cookie named kcc_<service>_session (one per service, because
#   browsers share cookies across ports of one host): HttpOnly, SameSite=Lax, Secure unless
#   `secure_cookie=False` (plain http://localhost only), lifetime `session_hours`.
# - CSRF: a random token in the session; every POST/PUT/PATCH/DELETE sent as a form, and every
#   unsafe request to a login_required view, must carry it (form field `csrf_token` or header
#   X-CSRF-Token). Missing: 400 problem; wrong: 403 problem (constant-time comparison).
# - Template globals `csrf_token()`, `csrf_field()` and `current_user()`.
# - login_required(*roles): not logged in → GET redirects to /login?next=<path>, other
#   methods get a 401 problem; logged in with another role → 403 problem.
# - After login: back to `next` only when it is a path on this site (is_local_path), else
#   to `home`.

from __future__ import annotations

import hmac
import secrets
import time
import unicodedata
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any, Final, TypeVar, cast
from urllib.parse import unquote, urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    redirect,
    render_template,
    render_template_string,
    request,
    session,
    url_for,
)
from markupsafe import Markup
from sqlalchemy import Engine, MetaData, delete, insert, select, update
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from kcc_shared.api import TOKENS_EXTENSION
from kcc_shared.auth import Principal, TokenStore, hash_token, sessions_table
from kcc_shared.db import write
from kcc_shared.problems import Forbidden, Problem, Unauthorized, log_database_unavailable

__all__ = [
    "CHANNEL_LABELS",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "MIN_SECRET_LENGTH",
    "PRIORITY_LABELS",
    "SESSIONS_EXTENSION",
    "WEB_EXTENSION",
    "CsrfMismatch",
    "CsrfMissing",
    "InvalidForm",
    "SessionStore",
    "check_csrf",
    "csrf_field",
    "csrf_token",
    "current_user",
    "current_user_or_none",
    "init_web",
    "is_local_path",
    "login_required",
    "page_errors",
    "require_login",
]

F = TypeVar("F", bound=Callable[..., Any])

# What every page calls the contract's priorities and channels (kcc_shared.events).
PRIORITY_LABELS: Final = {"urgent": "Spoed", "high": "Hoog", "normal": "Normaal", "low": "Laag"}
CHANNEL_LABELS: Final = {
    "phone": "Telefoon",
    "email": "E-mail",
    "chat": "Chat",
    "counter": "Balie",
    "app": "App",
    "letter": "Brief",
    "social": "Sociale media",
}

# What a person's browser says when a page refuses (page_errors), by HTTP status.
_PAGE_REFUSALS: Final = {
    403: (
        "Geen toegang",
        "Deze pagina is niet voor jou: ze hoort bij een afdeling of team waar je niet bij "
        "hoort. Een doorgestuurde vraag hoort nu bij de afdeling die hem kreeg.",
    ),
    404: (
        "Niet gevonden",
        "Deze pagina bestaat niet, of de vraag is er niet (meer) voor jou. Controleer de link.",
    ),
}
_PAGE_REFUSED: Final = (
    "Dat lukte niet",
    "Deze pagina kan dit verzoek niet verwerken. Ga terug en probeer het opnieuw.",
)
_PAGE_UNAVAILABLE: Final = (
    "Even niet bereikbaar",
    "De gegevens zijn even niet bereikbaar. Probeer het over een paar seconden opnieuw.",
)

CSRF_FIELD: Final = "csrf_token"
CSRF_HEADER: Final = "X-CSRF-Token"
WEB_EXTENSION: Final = "kcc.web"
SESSIONS_EXTENSION: Final = "kcc.web.sessions"
MIN_SECRET_LENGTH: Final = 16

_SESSION_USER: Final = "kcc_user"
_SESSION_CSRF: Final = "kcc_csrf"
_UNSAFE: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_FORM_TYPES: Final = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


class CsrfMissing(Problem):
    status, title, slug = 400, "CSRF token missing", "csrf-missing"


class CsrfMismatch(Problem):
    status, title, slug = 403, "CSRF token invalid", "csrf-invalid"


class SessionStore:
    """Server-side record of web logins: a session lives until logout, expiry or revocation.

    The cookie is signed, so it cannot be forged, but a signed cookie alone stays valid when
    copied; this table is what logout ends. One primary-key look-up per page request.
    """

    def __init__(self, engine: Engine, service: str) -> None:
        self.engine = engine
        self.service = service
        # The table is the auth history's, made (or refused) with the token store's.
        self.table = sessions_table(MetaData())

    def start(self, principal: Principal, lifetime: timedelta) -> str:
        """A new session for `principal`; returns the id the cookie carries."""
        sid = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        t = self.table
        with write(self.engine) as connection:
            # Expired rows go as new ones come: the table stays the size of a working day.
            connection.execute(delete(t).where(t.c.expires_at < now - timedelta(days=1)))
            connection.execute(
                insert(t).values(
                    id=hash_token(sid),
                    service=self.service,
                    user_id=principal.user_id,
                    token_id=principal.token_id,
                    created_at=now,
                    expires_at=now + lifetime,
                )
            )
        return sid

    def active(self, sid: str) -> bool:
        t = self.table
        with self.engine.connect() as connection:
            row = connection.execute(
                select(t.c.expires_at).where(
                    t.c.id == hash_token(sid), t.c.service == self.service, t.c.ended_at.is_(None)
                )
            ).first()
        return row is not None and row.expires_at > datetime.now(UTC)

    def end(self, sid: str) -> None:
        t = self.table
        with write(self.engine) as connection:
            connection.execute(
                update(t)
                .where(t.c.id == hash_token(sid), t.c.ended_at.is_(None))
                .values(ended_at=datetime.now(UTC))
            )


class InvalidForm(Problem):
    status, title, slug = 400, "Invalid form", "invalid-form"


class _Settings:
    def __init__(self, roles: Sequence[str], home: str, recheck_seconds: float) -> None:
        self.roles = tuple(roles)
        self.home = home
        self.recheck_seconds = recheck_seconds


def init_web(
    app: Flask,
    *,
    service: str,
    roles: Sequence[str],
    secret_key: str | None,
    secure_cookie: bool = True,
    home: str = "/",
    session_hours: float = 8.0,
    recheck_seconds: float = 60.0,
) -> None:
    """Add login, logout, the session cookie and CSRF checks to `app` (see the module notes)."""
    if not secret_key or len(secret_key) < MIN_SECRET_LENGTH:
        raise ValueError(
            f"KCC_SECRET_KEY must be set (at least {MIN_SECRET_LENGTH} characters) to serve "
            "the web pages: it signs their session cookies"
        )
    app.secret_key = secret_key
    app.config.update(
        SESSION_COOKIE_NAME=f"kcc_{service.replace('-', '_')}_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure_cookie,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=session_hours),
    )
    app.extensions[WEB_EXTENSION] = _Settings(roles, home, recheck_seconds)
    tokens: TokenStore = app.extensions[TOKENS_EXTENSION]
    app.extensions[SESSIONS_EXTENSION] = SessionStore(tokens.engine, service)
    app.register_blueprint(_blueprint())
    app.add_template_global(csrf_token)
    app.add_template_global(csrf_field)
    app.add_template_global(current_user_or_none, "current_user")

    @app.before_request
    def _check_form_csrf() -> None:
        # Any form POST needs the token, whichever view it reaches (the login form included):
        # browsers send forms cross-site with the cookie, JSON API calls carry a bearer token.
        if request.method in _UNSAFE and request.mimetype in _FORM_TYPES:
            check_csrf()
            # A NUL cannot be stored (PostgreSQL refuses it in text): refuse the form whole.
            if any("\x00" in k or "\x00" in v for k, v in request.form.items(multi=True)):
                raise InvalidForm("A form field contains a NUL character; remove it.")

    @app.after_request
    def _page_headers(response: Response) -> Response:
        # The security headers (CSP, frames, nosniff, Referer) are kcc_shared.headers', on
        # every response of the app.
        if response.mimetype == "text/html" and _SESSION_USER in session:
            # Pages show personal work queues: never keep them in a shared cache.
            response.headers["Cache-Control"] = "no-store"
        return response


def page_errors(blueprint: Blueprint, template: str) -> None:
    """A page of `blueprint` that refuses (abort(403), abort(404), ...) or finds the database
    unreachable answers with `template` (given `title` and `message`) in Dutch: a person's
    browser shows a page with a way back, never the API's problem+json in English."""

    @blueprint.errorhandler(HTTPException)
    def _refused(exc: HTTPException) -> tuple[str, int]:
        status = exc.code or 500
        title, message = _PAGE_REFUSALS.get(status, _PAGE_REFUSED)
        return render_template(template, title=title, message=message), status

    @blueprint.errorhandler(OperationalError)
    def _unavailable(exc: OperationalError) -> tuple[str, int, dict[str, str]]:
        log_database_unavailable(exc)
        title, message = _PAGE_UNAVAILABLE
        html = render_template(template, title=title, message=message)
        return html, 503, {"Retry-After": "1", "Cache-Control": "no-store"}


def login_required(*roles: str) -> Callable[[F], F]:
    """Only for a logged-in person with one of `roles`; unsafe methods also need CSRF."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            refused = require_login(*roles)
            if refused is not None:
                return refused
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorator


def require_login(*roles: str) -> BaseResponse | None:
    """What login_required checks, for a before_request hook: None when the person may go on,
    else the redirect to /login (GET, HEAD); raises Unauthorized, Forbidden or a CSRF problem."""
    user = current_user_or_none()
    if user is None:
        if request.method in ("GET", "HEAD"):
            return redirect(url_for("web.login", next=request.full_path.rstrip("?")))
        raise Unauthorized("Log in first: /login")
    if request.method in _UNSAFE:
        check_csrf()
    if user.role not in roles:
        raise Forbidden(f"this page is for the role {' or '.join(roles)}")
    return None


def current_user() -> Principal:
    """The logged-in person (only inside a login_required view)."""
    user = current_user_or_none()
    if user is None:
        raise Unauthorized("Log in first: /login")
    return user


def current_user_or_none() -> Principal | None:
    if "kcc_web_user" in g:
        cached: Principal | None = g.kcc_web_user
        return cached
    user = _session_user()
    g.kcc_web_user = user
    return user


def csrf_token() -> str:
    """This session's CSRF token (made on first use)."""
    token = session.get(_SESSION_CSRF)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[_SESSION_CSRF] = token
    return token


def csrf_field() -> Markup:
    """The hidden input every form needs."""
    return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, csrf_token())


def check_csrf() -> None:
    """Raise CsrfMissing (400) or CsrfMismatch (403) unless the request carries the token."""
    if g.get("kcc_csrf_checked"):
        return
    sent = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    if not sent:
        raise CsrfMissing("This form has no CSRF token; reload the page and try again.")
    expected = session.get(_SESSION_CSRF)
    if not isinstance(expected, str) or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise CsrfMismatch("The CSRF token does not match this session; reload the page.")
    g.kcc_csrf_checked = True


# -- session --------------------------------------------------------------------------------


def _settings() -> _Settings:
    settings: _Settings = current_app.extensions[WEB_EXTENSION]
    return settings


def _tokens() -> TokenStore:
    store: TokenStore = current_app.extensions[TOKENS_EXTENSION]
    return store


def _session_user() -> Principal | None:
    data = session.get(_SESSION_USER)
    if not isinstance(data, dict):
        return None
    try:
        token_id = str(data["token_id"])
        checked_at = float(data["checked_at"])
        sid = str(data["sid"])
    except (KeyError, TypeError, ValueError):
        session.pop(_SESSION_USER, None)
        return None
    if not _sessions().active(sid):
        session.clear()  # logged out (perhaps in another browser holding a copy), or expired
        return None
    if time.time() - checked_at > _settings().recheck_seconds:
        principal = _tokens().principal_by_id(token_id)
        if principal is None or principal.role not in _settings().roles:
            _sessions().end(sid)
            session.clear()  # revoked (or role no longer allowed here): the session ends too
            return None
        _remember(principal)
        return principal
    return Principal(
        user_id=str(data["user_id"]),
        role=str(data["role"]),
        team=data.get("team"),
        departments=frozenset(data.get("departments", ())),
        token_id=token_id,
    )


def _sessions() -> SessionStore:
    store: SessionStore = current_app.extensions[SESSIONS_EXTENSION]
    return store


def _remember(principal: Principal, sid: str | None = None) -> None:
    if sid is None:
        sid = str(session[_SESSION_USER]["sid"])
    session[_SESSION_USER] = {
        "sid": sid,
        "user_id": principal.user_id,
        "role": principal.role,
        "team": principal.team,
        "departments": sorted(principal.departments),
        "token_id": principal.token_id,
        "checked_at": time.time(),
    }


def is_local_path(target: str | None) -> bool:
    """True only for a same-site relative path: one leading "/", no "//" and no backslash
    anywhere, no control or white-space character, no scheme or host, also after
    percent-decoding. Browsers drop a tab or newline and read "\\" as "/", so
    `/%09/evil.example` or `/\\evil.example` would leave the site (an open redirect after
    login is a phishing aid)."""
    if not target:
        return False
    for form in (target, unquote(target)):
        if not form.startswith("/") or "//" in form or "\\" in form:
            return False
        if any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in form):
            return False
        parts = urlsplit(form)
        if parts.scheme or parts.netloc:
            return False
    return True


def _safe_next(target: str | None) -> str:
    path = target if target is not None and is_local_path(target) else _settings().home
    # Paths are within the app; mounted under a prefix (kcc dev), the prefix comes first.
    return request.script_root + path


# -- login / logout -------------------------------------------------------------------------

_LOGIN_PAGE = """<!doctype html>
<html lang="nl">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Inloggen - KCC</title>
<style>
body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a}
label{display:block;font-weight:600;margin:.5rem 0 .25rem}
input[type=password]{width:100%;padding:.5rem;font-size:1rem}
button{margin-top:1rem;padding:.5rem 1rem;font-size:1rem}
:focus-visible{outline:3px solid #005fcc;outline-offset:2px}
.fout{border-left:4px solid #b00020;padding:.5rem 1rem;background:#fdecee}
</style></head>
<body><main>
<h1>Inloggen</h1>
<p>Plak je persoonlijke API-sleutel (begint met <code>kcc_</code>). Je blijft ingelogd tot je
uitlogt of tot het einde van de werkdag.</p>
{% if error %}<p class="fout" role="alert" id="fout">{{ error }}</p>{% endif %}
<form method="post" action="{{ url_for('web.login') }}">
  {{ csrf_field() }}
  <input type="hidden" name="next" value="{{ next }}">
  <label for="token">API-sleutel</label>
  <input type="password" id="token" name="token" required autocomplete="off"
    autofocus {% if error %}aria-describedby="fout" aria-invalid="true"{% endif %}>
  <button type="submit">Inloggen</button>
</form>
</main></body></html>
"""


def _blueprint() -> Blueprint:
    # static/live.js: how every page follows its live stream (url_for("web.static", ...)).
    blueprint = Blueprint("web", __name__, static_folder="static", static_url_path="/kcc-static")

    @blueprint.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        next_ = request.values.get("next")
        if request.method == "GET":
            if current_user_or_none() is not None:
                return redirect(_safe_next(next_))
            return _login_page(None, next_, 200)
        token = (request.form.get("token") or "").strip()
        principal = _tokens().authenticate(token) if token else None
        if principal is None:
            return _login_page("Deze API-sleutel is onbekend of ingetrokken.", next_, 401)
        allowed = _settings().roles
        if principal.role not in allowed:
            return _login_page(
                f"Deze sleutel hoort bij de rol {principal.role}; deze pagina's zijn voor "
                f"{' of '.join(allowed)}.",
                next_,
                403,
            )
        # A fresh session (new CSRF token) on login: a session fixed before login is useless.
        session.clear()
        session.permanent = True
        sid = _sessions().start(principal, current_app.permanent_session_lifetime)
        _remember(principal, sid)
        csrf_token()
        return redirect(_safe_next(next_))

    @blueprint.post("/logout")
    def logout() -> Any:
        check_csrf()
        data = session.get(_SESSION_USER)
        if isinstance(data, dict) and isinstance(data.get("sid"), str):
            _sessions().end(data["sid"])
        session.clear()
        return redirect(url_for("web.login"))

    return blueprint


def _login_page(error: str | None, next_: str | None, status: int) -> tuple[str, int]:
    page = render_template_string(_LOGIN_PAGE, error=error, next=_safe_next(next_))
    return page, status
