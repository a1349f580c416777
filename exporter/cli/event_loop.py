"""Which event loop runs the probes: uvloop when it is installed, else asyncio's.

uvloop does the same work with about half the CPU per probe (see
bench/RESULTS.md), mostly in fewer and cheaper system calls around each
socket read and write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

try:
    import uvloop
except ImportError:  # Windows, or a deliberately minimal install
    uvloop = None  # type: ignore[assignment]

_T = TypeVar("_T")


def run(main: Coroutine[Any, Any, _T], *, use_uvloop: bool = True) -> _T:
    if use_uvloop and uvloop is not None:
        return uvloop.run(main)
    return asyncio.run(main)
