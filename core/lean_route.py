"""A shorter request path for the simplest routes: the same response, less per-request work.

FastAPI runs every request of a route through the same machinery: a ``Request``, two
``AsyncExitStack``s, the route-level exception wrapper, the body reader, the dependency
solver, the telemetry bookkeeping, then validation and serialization. For a route whose
endpoint takes only path parameters and fastplug services (``fastplug.core.service``), and
whose answer is JSON through the default response class, almost all of that has nothing to
do. :func:`lean_app` gives such a route an ASGI app that validates the path parameters with
FastAPI's own ``request_params_to_args``, takes the services from the request state, calls
the endpoint and sends FastAPI's own ``serialize_response`` bytes in FastAPI's own
``Response``: the same status, headers and body.

Anything else goes to the route's FastAPI app unchanged, decided once when the route is built
(other parameters, dependencies, a body, ``Request``/``Response``/``BackgroundTasks``
parameters, a sync or streaming endpoint, a custom response class, a status without a body,
a route body limit) or per request before the endpoint runs (a path parameter that does not
validate: FastAPI's 422; a missing service; ``dependency_overrides`` set; FastAPI's native
telemetry recording the request). Exceptions the endpoint raises propagate to the app's
exception middleware, which holds the same handlers as the route-level wrapper.
"""

from __future__ import annotations

import inspect
from typing import Any

from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import request_params_to_args
from fastapi.routing import APIRoute, serialize_response
from fastapi.utils import is_body_allowed_for_status_code
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from fastplug.core.services import SERVICE_KEY

try:  # what FastAPI's handler reads per request (0.165); without them the lean path is off
    from fastapi.routing import _extract_endpoint_context
    from fastapi.telemetry import get_telemetry_data
except ImportError:  # pragma: no cover - another FastAPI
    _extract_endpoint_context = get_telemetry_data = None  # type: ignore[assignment]

_PARAM_NAMES = (
    "request_param_name",
    "websocket_param_name",
    "http_connection_param_name",
    "response_param_name",
    "background_tasks_param_name",
    "security_scopes_param_name",
)


def _services(dependant: Dependant) -> dict[str, str] | None:
    """Parameter name -> service key, when every dependency is a fastplug service; else None."""
    found: dict[str, str] = {}
    for sub in dependant.dependencies:
        key = getattr(sub.call, SERVICE_KEY, None)
        if key is None or sub.name is None or sub.dependencies or sub.own_oauth_scopes:
            return None
        found[sub.name] = key
    return found


def _eligible(route: APIRoute) -> dict[str, str] | None:
    """The route's services when the lean path gives exactly FastAPI's response; else None."""
    dependant = route.dependant
    if (
        get_telemetry_data is None
        or route.response_field is None
        or not isinstance(route.response_class, DefaultPlaceholder)
        or not is_body_allowed_for_status_code(route.status_code)
        or getattr(route, "max_body_size", None) is not None
        or getattr(route, "stream_item_field", None) is not None
        or dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or dependant.body_params
        or any(getattr(dependant, name) for name in _PARAM_NAMES)
        or not inspect.iscoroutinefunction(dependant.call)
        or inspect.isasyncgenfunction(dependant.call)
    ):
        return None
    return _services(dependant)


def lean_app(route: APIRoute, response_field: Any, full: ASGIApp) -> ASGIApp:
    """The route's ASGI app: the lean path where it applies (see the module), else ``full``."""
    services = _eligible(route)
    if services is None:
        return full
    dependant = route.dependant
    call = dependant.call
    assert call is not None
    path_fields = dependant.path_params
    provider = route.dependency_overrides_provider
    status = {} if route.status_code is None else {"status_code": route.status_code}
    options = {
        "include": route.response_model_include,
        "exclude": route.response_model_exclude,
        "by_alias": route.response_model_by_alias,
        "exclude_unset": route.response_model_exclude_unset,
        "exclude_defaults": route.response_model_exclude_defaults,
        "exclude_none": route.response_model_exclude_none,
    }
    service_items = tuple(services.items())
    template = dependant.path
    contexts: dict[tuple[str, str], Any] = {}  # (method, root path) -> FastAPI's endpoint context

    def context_of(scope: Scope) -> Any:
        method, root = scope["method"], scope.get("root_path", "")
        context = contexts.get((method, root))
        if context is None:
            context = dict(_extract_endpoint_context(call))
            if template:
                context["path"] = f"{method} {root.rstrip('/')}{template}"
            if len(contexts) < 64:
                contexts[(method, root)] = context
        return context

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if getattr(provider, "dependency_overrides", None) or get_telemetry_data() is not None:
            await full(scope, receive, send)
            return
        values, errors = request_params_to_args(path_fields, scope.get("path_params", {}))
        if errors:  # FastAPI's own 422
            await full(scope, receive, send)
            return
        if service_items:
            state = scope.get("state") or {}
            for name, key in service_items:
                value = state.get(key)
                if value is None:  # FastAPI's path raises ServiceMissing
                    await full(scope, receive, send)
                    return
                values[name] = value
        raw = await call(**values)
        if isinstance(raw, Response):
            response = raw
        else:
            content = await serialize_response(
                field=response_field,
                response_content=raw,
                is_coroutine=True,
                endpoint_ctx=context_of(scope),
                dump_json=True,
                **options,
            )
            response = Response(content=content, media_type="application/json", **status)
        await response(scope, receive, send)

    return app
