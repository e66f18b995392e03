"""What a run cost, from a model's ``cost`` config (SPEC 10). Pure.

Rule: ``cost`` is USD per million tokens for ``input``, ``output``,
``cacheRead`` and ``cacheWrite``. Cached prompt tokens are part of the prompt
tokens and are billed at ``cacheRead`` instead of ``input``:

    ((prompt - cached) x input + cached x cacheRead + completion x output
     + cache-write tokens x cacheWrite) / 1,000,000

A model whose prices are all zero (a local server) has no cost: None, not 0.
Counts from a server are not trusted: negative ones count as 0, and cached
tokens never exceed the prompt tokens.
"""

from __future__ import annotations

from pipeline.config import Cost

PER_TOKENS = 1_000_000


def run_cost(price: Cost, *, prompt: int, completion: int, cached: int = 0, cache_write: int = 0) -> float | None:
    """USD for one run's token counts, or None when the model has no prices.

    >>> run_cost(Cost(input=3, output=15, cache_read=0.3), prompt=1000, cached=400, completion=200)
    0.00492
    >>> run_cost(Cost(), prompt=1000, completion=200) is None
    True
    """
    if not (price.input or price.output or price.cache_read or price.cache_write):
        return None
    prompt, completion, cache_write = max(prompt, 0), max(completion, 0), max(cache_write, 0)
    cached = min(max(cached, 0), prompt)
    micro = (prompt - cached) * price.input + cached * price.cache_read + completion * price.output + cache_write * price.cache_write
    return round(micro / PER_TOKENS, 12)
