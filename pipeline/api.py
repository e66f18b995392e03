"""``Genesis``: the library's front door for services that embed the pipeline.

Build is separate from send: ``build()`` returns the immutable WireRequest
and does no I/O; sending and streaming live in ``backends`` and are reached
through the async methods added on top of this class.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from returns.result import Result

from pipeline.catalog import Catalog, build_catalog
from pipeline.config import LoadedConfig, load_config, parse_config
from pipeline.errors import GenesisError
from pipeline.runner import Pipeline, load_custom_stages
from pipeline.types import Context, WireRequest


class Genesis:
    """A loaded config, its catalog and its pipeline; reuse one per process.

    >>> g = Genesis.from_config_text('{models: {providers: {vllm: {baseUrl: "http://127.0.0.1:8000/v1", models: [{id: "m"}]}}}}', env={})
    >>> g.build("vllm/m", {"messages": [{"role": "user", "content": "hi"}]}).body
    b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'
    """

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        env: Mapping[str, str] | None = None,
        pipeline: Pipeline | None = None,
        transport: Any = None,
    ) -> None:
        self.loaded = loaded
        self.env: Mapping[str, str] = dict(os.environ if env is None else env)
        base = pipeline if pipeline is not None else Pipeline()
        self.pipeline = load_custom_stages(base, loaded.config.pipeline.stages, loaded.source)
        self.transport = transport
        self._catalog = build_catalog(loaded, self.env)

    @classmethod
    def from_config_file(cls, path: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None, **options: Any) -> Genesis:
        """Load ``path``, or the default location (``GENESIS_CONFIG_PATH``, ``~/.genesis/genesis.json``)."""
        environment = dict(os.environ if env is None else env)
        return cls(load_config(path, environment), env=environment, **options)

    @classmethod
    def from_config_text(cls, text: str, *, env: Mapping[str, str] | None = None, source: str = "<config>", **options: Any) -> Genesis:
        environment = dict(os.environ if env is None else env)
        return cls(parse_config(text, environment, source=source), env=environment, **options)

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    def with_catalog(self, catalog: Catalog) -> Genesis:
        """The same Genesis over another catalog (for example one with discovered models)."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone._catalog = catalog
        return clone

    def shape(self, model: str | None, request: Mapping[str, Any], *, headers: Sequence[tuple[str, str]] = ()) -> Result[Context, GenesisError]:
        """Run the stages; the context holds the shaped body, headers and the trace of every change."""
        return self.pipeline.shape(self._catalog, request, ref=model, headers=tuple(headers))

    def build_result(self, model: str | None, request: Mapping[str, Any], *, headers: Sequence[tuple[str, str]] = ()) -> Result[WireRequest, GenesisError]:
        return self.pipeline.build(self._catalog, request, ref=model, headers=tuple(headers))

    def build(self, model: str | None, request: Mapping[str, Any], *, headers: Sequence[tuple[str, str]] = ()) -> WireRequest:
        """The exact wire request for ``request`` to ``model``; raises a GenesisError on bad input."""
        result = self.pipeline.build(self._catalog, request, ref=model, headers=tuple(headers))
        return result.alt(_raise).unwrap()


def _raise(error: GenesisError) -> GenesisError:
    raise error
