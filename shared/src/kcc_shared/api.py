"""Building blocks of every HTTP API: OpenAPI via flask-smorest, problems, bearer auth."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from http import HTTPStatus
from typing import Any, Final, TypeVar, cast

import flask_smorest
from flask import Flask, Request, current_app, g
from flask_smorest.utils import prepare_response
from marshmallow import missing
from webargs.flaskparser import FlaskParser, is_json_request

from kcc_shared.auth import Principal, TokenStore, bearer_token
from kcc_shared.headers import add_security_headers
from kcc_shared.jsonbody import load_json
from kcc_shared.problems import PROBLEM_JSON, Forbidden, ProblemSchema, Unauthorized

__all__ = [
    "BEARER",
    "TOKENS_EXTENSION",
    "Blueprint",
    "current_principal",
    "errors",
    "make_api",
    "requires",
]

F = TypeVar("F", bound=Callable[..., Any])

TOKENS_EXTENSION: Final = "kcc.tokens"
BEARER: Final[list[dict[str, list[str]]]] = [{"bearerAuth": []}]


class _Parser(FlaskParser):
    # Invalid input is a 400 with every field listed (webargs' default is 422).
    DEFAULT_VALIDATION_STATUS = 400

    def _raw_load_json(self, req: Request) -> Any:
        # Strictly: a lone surrogate, a NUL, a huge number or deep nesting is a 400 problem
        # (kcc_shared.jsonbody), never a 500 further on.
        if not is_json_request(req):
            return missing
        return load_json(req.get_data(cache=True))


class Blueprint(flask_smorest.Blueprint):  # type: ignore[misc]
    ARGUMENTS_PARSER = _Parser()


class Api(flask_smorest.Api):  # type: ignore[misc]
    """flask-smorest's Api with problem+json as the one documented error shape."""

    ERROR_SCHEMA = ProblemSchema

    def _register_error_handlers(self) -> None:
        # Errors are rendered by kcc_shared.problems, registered by each service.
        return None

    def _register_responses(self) -> None:
        # flask-smorest documents errors as application/json; ours are problem+json.
        for status in HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
                prepare_response(response, self.spec, PROBLEM_JSON)
            self.spec.components.response(status.name, response, lazy=True)
        default = {"description": "Any other error", "schema": self.ERROR_SCHEMA}
        prepare_response(default, self.spec, PROBLEM_JSON)
        self.spec.components.response("DEFAULT_ERROR", default, lazy=True)


def errors(blueprint: Blueprint, *statuses: int) -> Callable[[F], F]:
    """Document the problems a view can answer with (401, 403, 404, 409, ...)."""

    def decorator(view: F) -> F:
        for status in statuses:
            view = blueprint.alt_response(status, response=HTTPStatus(status).name)(view)
        return view

    return decorator


def make_api(app: Flask, *, title: str, version: str, description: str) -> Api:
    app.config.update(
        API_TITLE=title,
        API_VERSION=version,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
    )
    api = Api(app, spec_kwargs={"info": {"description": description}})
    # Every KCC web app is built here: each answer, page or JSON, gets the security headers.
    add_security_headers(app)
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "description": "A kcc_… API token."}
    )
    return api


def requires(*roles: str) -> Callable[[F], F]:
    """Resolve the bearer token to `g.principal` and allow only these roles (401/403)."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = authenticate()
            if principal.role not in roles:
                raise Forbidden(f"this needs the role {' or '.join(roles)}")
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorator


def authenticate() -> Principal:
    token = bearer_token(_request())
    if token is None:
        raise Unauthorized("Send an API token: Authorization: Bearer kcc_…")
    store: TokenStore = current_app.extensions[TOKENS_EXTENSION]
    principal = store.authenticate(token)
    if principal is None:
        raise Unauthorized("The API token is unknown or revoked.")
    g.principal = principal
    return principal


def current_principal() -> Principal:
    principal: Principal = g.principal
    return principal


def _request() -> Any:
    from flask import request

    return request
