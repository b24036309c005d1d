"""Typed dependency for handlers: ``async def h(http: HttpClient)``."""

import httpx

from core.services import service

HttpClient = service("http.client", httpx.AsyncClient)
"""The process's shared ``httpx.AsyncClient``."""
