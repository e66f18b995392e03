"""The syntax of a model ref: ``provider/model-id``, split on the first slash.

Kept apart from resolution (``pipeline.refs``) because the catalog needs it
too, and resolution needs the catalog.
"""

from __future__ import annotations

__all__ = ["normalize_ref", "split_ref"]


def split_ref(ref: str) -> tuple[str, str] | None:
    """``(provider, model_id)``, or None for a ref without a slash.

    >>> split_ref("Inferrs/google/gemma-4-E2B-it")
    ('inferrs', 'google/gemma-4-E2B-it')
    >>> split_ref("gemma") is None
    True
    """
    provider, slash, model_id = ref.partition("/")
    if not slash:
        return None
    return provider.strip().lower(), model_id.strip()


def normalize_ref(ref: str) -> str:
    """A ref with its provider id lower-cased (the model id keeps its case).

    >>> normalize_ref("VLLM/Tiny-Model")
    'vllm/Tiny-Model'
    """
    parts = split_ref(ref)
    return f"{parts[0]}/{parts[1]}" if parts else ref
