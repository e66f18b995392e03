"""Genesis: exact wire requests for self-hosted OpenAI-compatible LLM servers.

``import pipeline`` is cheap: names load on first use (PEP 562), so a CLI's
``--help`` and a service's start-up pay only for what they touch.

>>> import pipeline
>>> pipeline.Genesis.__name__
'Genesis'
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from pipeline.version import __version__

_EXPORTS = {
    "Genesis": "pipeline.api",
    "Pipeline": "pipeline.runner",
    "NamedStage": "pipeline.runner",
    "Context": "pipeline.types",
    "WireRequest": "pipeline.types",
    "Change": "pipeline.trace",
    "GenesisError": "pipeline.errors",
    "ConfigError": "pipeline.errors",
    "RequestError": "pipeline.errors",
    "StageError": "pipeline.errors",
    "UnknownModelError": "pipeline.errors",
    "ProviderError": "pipeline.errors",
    "ErrorClass": "pipeline.errors",
    "AnswerStep": "pipeline.answer",
    "AnswerStage": "pipeline.answer",
    "load_config": "pipeline.config",
    "parse_config": "pipeline.config",
    "build_catalog": "pipeline.catalog",
    "prompt_request": "pipeline.request",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:
    from pipeline.answer import AnswerStage, AnswerStep
    from pipeline.api import Genesis
    from pipeline.catalog import build_catalog
    from pipeline.config import load_config, parse_config
    from pipeline.errors import ConfigError, ErrorClass, GenesisError, ProviderError, RequestError, StageError, UnknownModelError
    from pipeline.request import prompt_request
    from pipeline.runner import NamedStage, Pipeline
    from pipeline.trace import Change
    from pipeline.types import Context, WireRequest


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
