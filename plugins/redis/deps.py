"""Typed dependency for handlers: ``async def h(redis: RedisClient)``."""

from redis.asyncio import Redis

from core.services import service

RedisClient = service("redis.client", Redis)
"""The shared ``redis.asyncio.Redis`` client (503 when ``[redis] url`` is unset)."""
