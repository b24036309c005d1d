"""The ~20 KB JSON body every target serves on ``GET /bench/json20k``.

A page of 60 product-like records from a fixed seed: ids, names, prices, tags and short
descriptions, so it compresses like a real API listing (not like a run of one byte).
Pre-encoded once, so a request costs only what surrounds the handler.
"""

import json
import random

WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
    "xray",
    "yankee",
    "zulu",
    "steel",
    "oak",
    "linen",
    "cotton",
    "copper",
    "matte",
    "glossy",
    "compact",
    "deluxe",
    "classic",
    "modern",
    "vintage",
    "rugged",
    "portable",
    "wireless",
    "organic",
    "recycled",
]
PATH = "/bench/json20k"


def records(count: int = 60, seed: int = 20) -> list[dict[str, object]]:
    """``count`` deterministic product records."""
    rng = random.Random(seed)
    return [
        {
            "id": 10_000 + i,
            "sku": f"SKU-{rng.randrange(16**8):08X}",
            "name": " ".join(rng.choice(WORDS) for _ in range(3)).title(),
            "price": round(rng.uniform(1, 500), 2),
            "currency": "EUR",
            "in_stock": rng.random() > 0.2,
            "stock": rng.randrange(0, 1000),
            "category": rng.choice(("tools", "garden", "kitchen", "office", "outdoor")),
            "tags": rng.sample(WORDS, 3),
            "rating": round(rng.uniform(1, 5), 1),
            "description": " ".join(rng.choice(WORDS) for _ in range(14)),
            "created_at": f"2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T12:00:00Z",
        }
        for i in range(count)
    ]


BODY: bytes = json.dumps({"items": records(), "page": 1, "per_page": 60}, separators=(",", ":")).encode()
