"""Seed users: names from first/last name lists, unique lower-case emails, sign-up dates
over the last year (more of them recent)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import click

from fastplug.config import Settings
from fastplug.plugins.db.api import SeedContext, Seeder, SeedResult

FIRST_NAMES = (
    "Aaliyah", "Adam", "Aisha", "Alejandro", "Alice", "Amara", "Amelia", "Andrei", "Anna", "Arjun",
    "Ava", "Ben", "Carlos", "Chen", "Chloe", "Daniel", "David", "Diego", "Elena", "Eli",
    "Emma", "Ethan", "Fatima", "Felix", "Grace", "Hana", "Hannah", "Hiro", "Ibrahim", "Isabella",
    "Ivan", "Jack", "James", "Jana", "Jasmine", "Javier", "Kai", "Karim", "Laura", "Leo",
    "Liam", "Lucas", "Lucia", "Maria", "Mateo", "Maya", "Mei", "Mia", "Mohammed", "Nadia",
    "Noah", "Nora", "Olivia", "Omar", "Priya", "Rafael", "Ravi", "Rosa", "Samuel", "Sara",
    "Sofia", "Sven", "Tariq", "Thomas", "Yara", "Yuki", "Zara", "Zoe",
)  # fmt: skip
LAST_NAMES = (
    "Abe", "Ahmed", "Andersen", "Bauer", "Brown", "Campbell", "Chen", "Costa", "Davies", "Dubois",
    "Evans", "Fernandez", "Fischer", "Garcia", "Gonzalez", "Gupta", "Hansen", "Hernandez", "Hoffmann", "Ivanova",
    "Jensen", "Johnson", "Kim", "Kowalski", "Kumar", "Lee", "Lopez", "Martin", "Martinez", "Meyer",
    "Miller", "Moreau", "Murphy", "Nakamura", "Nguyen", "Novak", "Okafor", "Olsen", "Patel", "Perez",
    "Petrov", "Rossi", "Santos", "Schmidt", "Silva", "Singh", "Smith", "Suzuki", "Tanaka", "Taylor",
    "Thompson", "Walker", "Wang", "Weber", "Williams", "Wilson", "Wong", "Yilmaz", "Zhang",
)  # fmt: skip
DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com", "shop.example")
COLUMNS = ("id", "email", "name", "created_at")
YEAR = timedelta(days=365).total_seconds()


def seeders(settings: Settings) -> Sequence[Seeder]:
    """The ``users`` seeder and its ``--users N`` option."""
    option = click.Option(["--users"], type=click.IntRange(0), default=1000, show_default=True, help="users to create")
    return [Seeder("users", seed_users, options=(option,), tables=("users",))]


def _email(first: str, last: str, user_id: int, style: int, domain: str) -> str:
    # the id makes it unique; the style only varies how it looks
    local = (f"{first}.{last}", f"{first[0]}{last}", f"{first}_{last}", f"{last}.{first}")[style]
    return f"{local}{user_id}@{domain}".lower()


def _row(ctx: SeedContext, user_id: int) -> tuple[Any, ...]:
    rng = ctx.random
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    email = _email(first, last, user_id, rng.randrange(4), rng.choice(DOMAINS))
    signed_up = ctx.now - timedelta(seconds=int(rng.triangular(0, YEAR, 0)))
    return (user_id, email, f"{first} {last}", signed_up)


async def seed_users(ctx: SeedContext) -> SeedResult:
    """Insert ``--users`` users in batches."""
    count: int = ctx.options["users"]
    ids = await ctx.reserve_ids("users", count)
    ctx.progress.start(count)
    for chunk in ctx.batches(ids):
        await ctx.insert("users", COLUMNS, [_row(ctx, user_id) for user_id in chunk])
        ctx.progress.advance(len(chunk))
    return SeedResult(ids=ids, counts={"users": count})
