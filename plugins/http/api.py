"""The http plugin's public API: the process's shared ``httpx.AsyncClient``.

``async def h(http: HttpClient)`` in a handler; ``services[CLIENT]`` in a plugin's lifespan.
"""

import httpx

from fastplug.core import service

CLIENT = "http.client"
"""The service key of the shared client."""

HttpClient = service(CLIENT, httpx.AsyncClient)
"""The process's shared ``httpx.AsyncClient``."""
