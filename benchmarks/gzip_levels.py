"""CPU time and size of gzip levels 1-9 (zlib, and ISA-L's 0-3 when ``isal`` is installed, and
brotli qualities) on the ~20 KB JSON body.

How ``[compression] gzip_level``'s default was chosen. Pinned to one CPU when ``taskset``
exists (re-executes itself under it); each figure is the best of several timed loops.

    .venv/bin/python benchmarks/gzip_levels.py
"""

from __future__ import annotations

import os
import shutil
import sys
import timeit
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "baselines"))
from payload import BODY

LOOPS, REPEAT = 300, 7


def best_us(stmt: object) -> float:
    """Best per-call time in microseconds over ``REPEAT`` loops of ``LOOPS`` calls."""
    return min(timeit.repeat(stmt, number=LOOPS, repeat=REPEAT)) / LOOPS * 1e6  # type: ignore[arg-type]


def main() -> None:
    """Print a Markdown table: level, bytes, ratio, us per response, size vs level 9."""
    if shutil.which("taskset") and os.environ.get("_GZIP_LEVELS_PINNED") != "1":
        os.environ["_GZIP_LEVELS_PINNED"] = "1"
        os.execvp("taskset", ["taskset", "-c", "0", sys.executable, *sys.argv])
    rows = []
    for level in range(1, 10):
        size = len(zlib.compress(BODY, level, wbits=31))
        rows.append((f"gzip {level}", size, best_us(lambda level=level: zlib.compress(BODY, level, wbits=31))))
    try:
        from isal import isal_zlib
    except ImportError:
        pass
    else:
        for level in range(4):
            size = len(isal_zlib.compress(BODY, level, wbits=31))
            rows.append((f"isal {level}", size, best_us(lambda level=level: isal_zlib.compress(BODY, level, wbits=31))))
    try:
        import brotli
    except ImportError:
        pass
    else:
        for quality in (1, 4, 5, 6, 11):
            size = len(brotli.compress(BODY, quality=quality))
            rows.append((f"br {quality}", size, best_us(lambda q=quality: brotli.compress(BODY, quality=q))))
    gzip9 = rows[8][1]
    print(f"body: {len(BODY):,} bytes of JSON")
    print("| codec level | bytes | ratio | us per response | size vs gzip 9 |")
    print("|---|---|---|---|---|")
    for name, size, us in rows:
        print(f"| {name} | {size:,} | {len(BODY) / size:.2f}x | {us:,.0f} | {size / gzip9 - 1:+.1%} |")


if __name__ == "__main__":
    main()
