"""The event loop of a run Genesis starts itself (``Genesis.run_sync``, and the CLI through it or ``run``).

Rules:
- trio runs as anyio runs it; nothing here touches it.
- asyncio runs on uvloop when uvloop is installed (``pip install 'genesis[fast]'``): its loop,
  sockets and timers are C, where asyncio's own are Python run on every read of a streamed
  answer (bench/per_read_cost.py counts them). ``GENESIS_UVLOOP=0`` keeps asyncio's own loop.
- uvloop is looked up, not imported, until a run asks for it; its absence is never an error.
- A caller's own event loop is the caller's: a ``Genesis`` used inside one runs on whatever loop that is.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import anyio

T = TypeVar("T")


def backend_options(backend: str, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """anyio's ``backend_options`` for a run on ``backend``.

    >>> backend_options("trio")
    {}
    >>> backend_options("asyncio", {"GENESIS_UVLOOP": "0"})
    {}
    """
    env = os.environ if environ is None else environ
    if backend != "asyncio" or env.get("GENESIS_UVLOOP", "").strip() == "0":
        return {}
    if importlib.util.find_spec("uvloop") is None:
        return {}
    return {"use_uvloop": True}


def run(main: Callable[[], Awaitable[T]], *, backend: str = "asyncio", environ: Mapping[str, str] | None = None) -> T:
    """``anyio.run(main)`` on ``backend``, on uvloop when asyncio is chosen and uvloop is installed."""
    return anyio.run(main, backend=backend, backend_options=backend_options(backend, environ))
