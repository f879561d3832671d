"""The OpenAPI contract every jetfleet HTTP server shares: documented error answers and a truthful ``Allow``.

``finish_contract(app)`` works on the generated schema, so an endpoint added later is covered without a line
of its own: an operation with a request body documents 400 (an unparseable body), one with a path parameter
404 (the resource it names does not exist), one with a security requirement 401 and 403. A 405 answer lists
every method the schema documents for the path, not only those of the first route that matched it.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import compile_path

Responses = dict[int | str, dict[str, Any]]

DESCRIPTIONS = {
    400: "Bad request: the body cannot be parsed, or a value is refused (``detail`` names the field)",
    401: "Missing, unknown, expired or revoked token",
    403: "The token is valid but lacks the scope this operation needs (``detail`` names it)",
    404: "The resource named in the path (or a resource the body refers to) does not exist",
    409: "Conflict with the current state (``detail`` says which)",
    413: "The body is over the server's size limit",
    415: "Unsupported content type",
    416: "Range not satisfiable",
    503: "Temporarily unavailable: retry later",
}
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class ErrorBody(BaseModel):
    """Every error answer: ``detail`` is a message, or FastAPI's list of validation errors."""

    detail: str | list[dict[str, Any]]


def errors(*codes: int, model: type[BaseModel] = ErrorBody) -> Responses:
    """``responses=`` entries documenting ``codes`` with the error body."""
    return {code: {"model": model, "description": DESCRIPTIONS[code]} for code in codes}


def finish_contract(app: FastAPI, *, error_models: dict[str, type[BaseModel]] | None = None) -> None:
    """Document the errors each operation can answer by its shape; make 405 answers list the path's methods.

    ``error_models`` maps a path prefix to the error body of the routes under it (default: ``ErrorBody``).
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(build(), error_models or {})
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    if app.exception_handlers.get(HTTPException) is http_exception_handler:
        async def with_allow(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, HTTPException)
            if exc.status_code == 405:
                exc.headers = {**(exc.headers or {}), "Allow": allowed_methods(app, request.url.path)}
            return await http_exception_handler(request, exc)

        app.add_exception_handler(HTTPException, with_allow)


def document_errors(schema: dict[str, Any], error_models: dict[str, type[BaseModel]]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    models: list[type[BaseModel]] = [ErrorBody, *error_models.values()]
    for model in models:
        body = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(body.pop("$defs", {}))
        components[model.__name__] = body
    for path, operations in schema.get("paths", {}).items():
        model = next((m for prefix, m in error_models.items() if path.startswith(prefix)), ErrorBody)
        content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}
        for method, operation in operations.items():
            if method not in HTTP_METHODS:
                continue
            for parameter in operation.get("parameters", []):
                _absent_is_null(parameter)
            for media in operation.get("requestBody", {}).get("content", {}).values():
                components.update(media.get("schema", {}).pop("$defs", {}))  # openapi_extra bodies' models
            form = operation.get("requestBody", {}).get("content", {}).get("multipart/form-data", {})
            ref = form.get("schema", {}).get("$ref", "")
            fields = components.get(ref.rsplit("/", 1)[-1], {}).get("properties", {}) if ref else {}
            for name, field in list(fields.items()):  # a form field, like a header, is null by being absent
                parameter = {"schema": field}
                _absent_is_null(parameter)
                fields[name] = parameter["schema"]
            codes = []
            if "requestBody" in operation:
                codes.append(400)
            if "{" in path:
                codes.append(404)
            if operation.get("security"):
                codes += [401, 403]
            for code in codes:
                operation["responses"].setdefault(str(code), {"description": DESCRIPTIONS[code], "content": content})
    return schema


def _absent_is_null(parameter: dict[str, Any]) -> None:
    """An optional parameter is null by being absent: a header cannot carry JSON null (only the text "null")."""
    schema = parameter.get("schema", {})
    variants = [v for v in schema.get("anyOf", ()) if v.get("type") != "null"]
    if "anyOf" in schema and len(variants) == 1 and not parameter.get("required"):
        parameter["schema"] = {**{k: v for k, v in schema.items() if k != "anyOf"}, **variants[0]}
        if parameter["schema"].get("default", 0) is None:
            del parameter["schema"]["default"]


def allowed_methods(app: FastAPI, path: str) -> str:
    """The methods the schema documents for ``path`` (the value of an ``Allow`` header)."""
    paths = app.openapi()["paths"]
    matching = [template for template, regex in _templates(app) if regex.match(path)]
    exact = [template for template in matching if template == path]  # concrete paths win over templated ones
    return ", ".join(sorted({method.upper() for template in exact or matching for method in paths[template]
                             if method in HTTP_METHODS}))


@cache
def _compiled(template: str) -> re.Pattern[str]:
    return compile_path(template)[0]


def _templates(app: FastAPI) -> list[tuple[str, re.Pattern[str]]]:
    return [(template, _compiled(template)) for template in app.openapi()["paths"]]
