"""``Genesis``: the library's front door for services that embed the pipeline.

Build is separate from send: ``build()`` returns the immutable WireRequest
and does no I/O; sending and streaming live in ``backends`` and are reached
through the async methods added on top of this class.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pipeline.errors import GenesisError, UnknownModelError, unwrap_or_raise

# ``from pipeline import Genesis`` imports only this module and the errors: the config loader, the
# catalog, the runner (and ``returns``, msgspec, logging with them) load when a Genesis is first made,
# so a program that imports the facade and never uses it, or only asks for --help, does not pay for them.
if TYPE_CHECKING:
    from returns.result import Result

    from backends.audit import AuditRecord
    from pipeline.auth_profiles import AuthProfiles
    from pipeline.blocking import BlockingIterator
    from pipeline.catalog import Catalog
    from pipeline.config import LoadedConfig
    from pipeline.embeddings import EmbeddingInput, Embeddings
    from pipeline.events import Completion, Event, Output
    from pipeline.runner import Pipeline
    from pipeline.telemetry import Telemetry
    from pipeline.types import Context, WireRequest


T = TypeVar("T")


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
        sleep: Callable[[float], Awaitable[None]] | None = None,
        clock: Callable[[], float] | None = None,
        random: Callable[[], float] | None = None,
        auth_profiles: AuthProfiles | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        """``sleep`` (the wait between retries), ``clock`` (monotonic seconds, for
        cooldowns) and ``random`` (a draw in [0, 1), the retry jitter) are
        injectable, so tests neither wait nor guess. ``auth_profiles``: keys stored
        with ``genesis auth set``, the last key source after ``apiKey`` and the
        variable (``from_config_file`` reads them from the state folder; none otherwise).
        ``telemetry``: told of every run and try (``pipeline.telemetry``; the OpenTelemetry one is
        ``pipeline.otel.GenAITelemetry``); None, the default, turns it off."""
        import logging
        import time
        from random import random as uniform

        from backends.retry import Cooldowns
        from pipeline.catalog import build_catalog
        from pipeline.runner import Pipeline, load_custom_stages

        self.loaded = loaded
        self.env: Mapping[str, str] = dict(os.environ if env is None else env)
        base = pipeline if pipeline is not None else Pipeline()
        self.pipeline = load_custom_stages(base, loaded.config.pipeline.stages, loaded.source, loaded.folder)
        self.transport = transport
        self.warn: Callable[[str], None] = logging.getLogger("genesis").warning
        self.sleep: Callable[[float], Awaitable[None]] = sleep or _anyio_sleep
        self.random: Callable[[], float] = random or uniform
        # Models that keep failing are skipped by later runs for a while (backends.retry).
        self.cooldowns = Cooldowns(clock or time.monotonic)
        self.auth_profiles = auth_profiles
        self.telemetry = telemetry
        self._catalog = build_catalog(loaded, self.env, profiles=auth_profiles)
        self._client: Any = None
        self._discovered = False

    @classmethod
    def from_config_file(
        cls, path: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None, **options: Any
    ) -> Genesis:
        """Load ``path``, or the default location (``GENESIS_CONFIG_PATH``, ``~/.genesis/genesis.json``),
        and the auth profiles of the state folder (``$GENESIS_STATE_DIR/auth-profiles.json``, else
        ``~/.genesis/auth-profiles.json``) unless ``auth_profiles=`` is given."""
        from pipeline.config import load_config

        environment = dict(os.environ if env is None else env)
        loaded = load_config(path, environment)
        if "auth_profiles" not in options:
            from backends.auth_store import auth_file, read_auth_profiles

            options["auth_profiles"] = read_auth_profiles(auth_file(environment))
        return cls(loaded, env=environment, **options)

    @classmethod
    def from_config_text(cls, text: str, *, env: Mapping[str, str] | None = None, source: str = "<config>", **options: Any) -> Genesis:
        from pipeline.config import parse_config

        environment = dict(os.environ if env is None else env)
        return cls(parse_config(text, environment, source=source), env=environment, **options)

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    def shape(
        self, model: str | None, request: Mapping[str, Any], *, headers: Sequence[tuple[str, str]] = ()
    ) -> Result[Context, GenesisError]:
        """Run the stages; the context holds the shaped body, headers and the trace of every change."""
        return self.pipeline.shape(self._catalog, request, ref=model, headers=tuple(headers))

    def build_result(
        self, model: str | None, request: Mapping[str, Any], *, headers: Sequence[tuple[str, str]] = ()
    ) -> Result[WireRequest, GenesisError]:
        return self.pipeline.build(self._catalog, request, ref=model, headers=tuple(headers)).alt(self._name_config)

    def _name_config(self, error: GenesisError) -> GenesisError:
        """An unknown model is most often a config that was not the one meant (or none was found,
        as with ``from_config_file()`` and no file): its traceback says which config was read."""
        note = f"config read: {self.loaded.source}"
        if isinstance(error, UnknownModelError) and note not in getattr(error, "__notes__", ()):
            error.add_note(note)
        return error

    def build(self, model: str | None, request: Mapping[str, Any], *, headers: Sequence[tuple[str, str]] = ()) -> WireRequest:
        """The exact wire request for ``request`` to ``model``; raises a GenesisError on bad input.

        ``.trace`` says what each request-side stage changed and why, ``.target`` which provider and
        model it goes to; neither is part of the bytes sent or shown."""
        return unwrap_or_raise(self.build_result(model, request, headers=headers))  # type: ignore[no-any-return]

    # -- I/O: everything below sends requests (httpx, under anyio: asyncio or trio) --

    def client(self) -> Any:
        """The shared ``httpx.AsyncClient`` (made on first use, with the injected transport if any)."""
        if self._client is None:
            from backends.http import make_client

            self._client = make_client(self.transport, environ=self.env)  # proxies follow Genesis(env=...)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def __aenter__(self) -> Genesis:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def discover(self) -> None:
        """Ask each built-in provider opted in (its key variable or an auth profile) for its models, once.

        A provider that does not answer, or answers anything unusable, is a one-line
        warning (``self.warn``, configured secrets scrubbed), never an error: its refs
        still resolve, to synthesized entries. Cancellation propagates.
        """
        if self._discovered:
            return
        self._discovered = True
        targets = [provider for provider in self._catalog.providers.values() if provider.discovery]
        if not targets:
            return
        import anyio

        from backends.discovery import fetch_models
        from pipeline.catalog import build_catalog

        found: dict[str, Any] = {}

        async def one(provider: Any) -> None:
            # Each provider's failure is caught here, inside its task, so the task
            # group never raises an ExceptionGroup for a provider that failed.
            try:
                found[provider.id], _ = await fetch_models(self.client(), provider)
            except GenesisError as error:
                hint = f" (hint: {error.hint})" if error.hint else ""
                self.warn(self._scrubbed(f"discovery of {provider.id} models failed: {error}{hint}"))
            except Exception as error:  # a bug or an unforeseen answer must not stop the run
                self.warn(self._scrubbed(f"discovery of {provider.id} models failed: {type(error).__name__}: {error}"))

        async with anyio.create_task_group() as group:
            for provider in targets:
                group.start_soon(one, provider)
        self._catalog = build_catalog(self.loaded, self.env, found, self.auth_profiles)

    def _scrubbed(self, message: str) -> str:
        """One line, with every configured secret and echoed credential replaced (``pipeline.secrets.scrub``)."""
        from pipeline.secrets import scrub

        return " ".join(scrub(message, self._catalog.secrets).split())

    def stream(
        self,
        model: str | None,
        request: Mapping[str, Any],
        *,
        headers: Sequence[tuple[str, str]] = (),
        audit: Callable[[AuditRecord], None] | None = None,
        fallbacks: bool = True,
    ) -> AsyncGenerator[Event, None]:
        """Send the request (with retries and failover) and yield typed events as they arrive.

        A request without a ``stream`` field is sent streamed (``"stream": true``);
        ``"stream": false`` is honoured and yields the whole answer at once. Text,
        reasoning and tool-call pieces come as they arrive; Usage, Timings and Finish
        once the answer is complete; ``AttemptFailed`` for each try, retry or skip the
        run goes on after (see ``backends.session``).
        """
        from backends.session import RunState

        if "stream" not in request:
            request = {**request, "stream": True}
        return self._events(model, request, RunState(), headers, audit, fallbacks)

    async def run(
        self,
        model: str | None,
        request: Mapping[str, Any],
        *,
        headers: Sequence[tuple[str, str]] = (),
        audit: Callable[[AuditRecord], None] | None = None,
        fallbacks: bool = True,
        on_event: Callable[[Event], None] | None = None,
    ) -> Completion:
        """Send the request and return the whole completion (streamed or not, per the request)."""
        from backends.session import RunState

        state = RunState()
        async for event in self._events(model, request, state, headers, audit, fallbacks):
            if on_event is not None:
                on_event(event)
        return _completion(state)

    async def _events(
        self,
        model: str | None,
        request: Mapping[str, Any],
        state: Any,
        headers: Sequence[tuple[str, str]],
        audit: Callable[[AuditRecord], None] | None,
        fallbacks: bool,
    ) -> AsyncGenerator[Event, None]:
        """One run: discovery (once per Genesis), then the session, always closed; its lists of events (one per read) taken apart."""
        from backends.session import run_events

        await self.discover()
        reads = self.observe_run(
            model, request, state, run_events(self, model, request, state, headers=headers, audit=audit, use_fallbacks=fallbacks)
        )
        try:
            async for events in reads:
                for event in events:
                    yield event
        finally:
            await reads.aclose()

    def observe_run(
        self, model: str | None, request: Mapping[str, Any], state: Any, reads: AsyncGenerator[list[Event], None]
    ) -> AsyncGenerator[list[Event], None]:
        """A chat run's ``reads`` (its events, one list per read), reported to ``self.telemetry`` (each try through
        ``state``); as they are when it is off."""
        if self.telemetry is None:
            return reads
        from pipeline.telemetry import observed

        state.observer = self.telemetry.start_run("chat", model, request, self._catalog)
        return observed(reads, state.observer)

    # -- embeddings: POST /v1/embeddings (pipeline.embeddings builds, backends.embeddings sends) --

    def build_embedding_result(
        self, model: str | None, request: EmbeddingInput, *, headers: Sequence[tuple[str, str]] = ()
    ) -> Result[WireRequest, GenesisError]:
        from pipeline.embeddings import build_embedding

        return build_embedding(self.pipeline, self._catalog, request, ref=model, headers=tuple(headers)).alt(self._name_config)

    def build_embedding(self, model: str | None, request: EmbeddingInput, *, headers: Sequence[tuple[str, str]] = ()) -> WireRequest:
        """The exact wire request for an embeddings request; raises a GenesisError on bad input.

        ``request`` is a string, a list of strings, or a body (``{"input": ..., "dimensions": ...}``).
        ``resolve_ref`` and ``attach_headers`` run; the chat-only stages do not, and ``.trace`` says so."""
        return unwrap_or_raise(self.build_embedding_result(model, request, headers=headers))  # type: ignore[no-any-return]

    async def embed(
        self,
        model: str | None,
        request: EmbeddingInput,
        *,
        headers: Sequence[tuple[str, str]] = (),
        audit: Callable[[AuditRecord], None] | None = None,
    ) -> Embeddings:
        """One vector per input, in input order; retried as chat is, never sent to a fallback model.

        Failures are ``ProviderError`` (an answer that is not a usable embeddings answer: class ``protocol``)."""
        from backends.embeddings import fetch_embeddings

        await self.discover()
        if self.telemetry is None:
            return await fetch_embeddings(self, self.build_embedding(model, request, headers=headers), audit=audit)
        observer = self.telemetry.start_run(
            "embeddings", model, request if isinstance(request, Mapping) else {"input": request}, self._catalog
        )
        try:
            embeddings = await fetch_embeddings(self, self.build_embedding(model, request, headers=headers), audit=audit, observer=observer)
        except BaseException as error:
            observer.ended(error)
            raise
        observer.ended(None)
        return embeddings

    # -- the sync facade: for code without an event loop (pipeline.blocking) --

    def run_sync(self, model: str | None, request: Mapping[str, Any], *, backend: str = "asyncio", **options: Any) -> Completion:
        """``run()`` for code without an event loop; takes ``run()``'s options.

        Each call runs a private event loop in the calling thread, over HTTP connections of its
        own that are closed on return, so it works from any thread, next to threads that run
        loops. Called from a thread that runs an event loop it raises ``SyncInsideLoopError``
        (``await run()`` there). Failures are the same typed errors ``run()`` raises.
        """
        return self._blocking("run_sync", "await Genesis.run(...)", backend, lambda local: local.run(model, request, **options))

    def embed_sync(self, model: str | None, request: EmbeddingInput, *, backend: str = "asyncio", **options: Any) -> Embeddings:
        """``embed()`` for code without an event loop, as ``run_sync()`` is for ``run()``."""
        return self._blocking("embed_sync", "await Genesis.embed(...)", backend, lambda local: local.embed(model, request, **options))

    def _blocking(self, method: str, instead: str, backend: str, call: Callable[[Genesis], Awaitable[T]]) -> T:
        """``call`` on a copy of this Genesis (``_loop_local``) in a private loop in this thread; refused
        (``SyncInsideLoopError`` naming ``instead``) in a thread that runs a loop."""
        from pipeline.blocking import call_blocking, refuse_inside_loop

        refuse_inside_loop(method, instead)
        local = self._loop_local()

        async def main() -> T:
            try:
                return await call(local)
            finally:
                await self._settle(local)

        return call_blocking(main, backend=backend, backend_options=self._loop_options(backend))

    def stream_sync(
        self,
        model: str | None,
        request: Mapping[str, Any],
        *,
        headers: Sequence[tuple[str, str]] = (),
        audit: Callable[[AuditRecord], None] | None = None,
        fallbacks: bool = True,
        backend: str = "asyncio",
    ) -> BlockingIterator[Event]:
        """``stream()`` for code without an event loop: an iterator of the same typed events.

        Nothing is sent until the first ``next()``. Leaving the iteration any way (``break``, an
        exception in the loop body, ``close()``, a ``with`` block, garbage collection) closes the
        HTTP response and stops the private loop; failures are the ``ProviderError`` ``stream()``
        raises. From a thread that runs an event loop it raises ``SyncInsideLoopError``. The loop
        runs in a thread of its own, so ``audit`` is called from that thread.
        """
        from pipeline.blocking import BlockingIterator, refuse_inside_loop

        refuse_inside_loop("stream_sync", "async for event in Genesis.stream(...)")
        local = self._loop_local()
        return BlockingIterator(
            lambda: local.stream(model, request, headers=headers, audit=audit, fallbacks=fallbacks),
            cleanup=lambda: self._settle(local),
            backend=backend,
            backend_options=self._loop_options(backend),
            refusal=("stream_sync", "async for event in Genesis.stream(...)"),
        )

    def _loop_options(self, backend: str) -> dict[str, Any]:
        """anyio's options for a loop this Genesis starts itself: uvloop on asyncio when installed
        (``genesis[fast]``, ``GENESIS_UVLOOP=0`` turns it off; ``backends.eventloop``)."""
        from backends.eventloop import backend_options

        return backend_options(backend, self.env)

    def _loop_local(self) -> Genesis:
        """This Genesis for one private loop: the same catalog, stages, cooldowns and hooks, but
        no HTTP client yet (it makes its own in that loop: a client is bound to the loop it runs on).
        An injected transport is lent to that client, never closed with it: it is the caller's."""
        import copy

        local = copy.copy(self)
        local._client = None
        if self.transport is not None:
            from backends.http import LentTransport

            local.transport = LentTransport(self.transport)
        return local

    async def _settle(self, local: Genesis) -> None:
        """Close ``local``'s client; keep what its discovery found, so it runs once per Genesis."""
        try:
            await local.aclose()
        finally:
            if local._discovered and not self._discovered:
                self._catalog, self._discovered = local._catalog, True


async def _anyio_sleep(seconds: float) -> None:
    import anyio

    await anyio.sleep(seconds)


def outputs_of(completion: Completion) -> tuple[Output, ...]:
    """Every choice of a completion; one without ``outputs`` is its own single choice.

    >>> from pipeline.events import Completion
    >>> [(o.index, o.text) for o in outputs_of(Completion("hi", "stop", "stop"))]
    [(0, 'hi')]
    """
    if completion.outputs:
        return completion.outputs
    from pipeline.events import Output

    return (
        Output(0, completion.text, completion.finish_reason, completion.raw_finish_reason, completion.reasoning, completion.tool_calls),
    )


def _completion(state: Any) -> Completion:
    """The answer of the attempt that succeeded, with every attempt, its timings and its cost."""
    import msgspec

    from pipeline.cost import run_cost

    target = state.target
    completion: Completion = state.aggregator.completion(provider=target.provider.id, model=target.model.config.id)
    usage = completion.usage
    cost = (
        None
        if usage is None
        else run_cost(
            target.model.config.cost,
            prompt=usage.prompt_tokens,
            completion=usage.completion_tokens,
            cached=usage.cached_tokens,
            cache_write=usage.cache_write_tokens,
        )
    )
    return msgspec.structs.replace(
        completion,
        attempts=tuple(state.attempts),
        outputs=outputs_of(completion),
        cost=cost,
        timings=completion.timings if completion.timings is not None else state.timings,
        answer_trace=tuple(state.answer_trace),
    )
