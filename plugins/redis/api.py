"""The redis plugin's public API: the shared client, for handlers and other plugins.

``async def h(redis: RedisClient)`` in a handler; ``services[CLIENT]`` in a plugin's lifespan.
"""

from redis.asyncio import Redis

from fastplug.core import service

CLIENT = "redis.client"
"""The service key of the shared client (absent when ``[redis] url`` is unset)."""

RedisClient = service(CLIENT, Redis)
"""The shared ``redis.asyncio.Redis`` client (503 when ``[redis] url`` is unset)."""
