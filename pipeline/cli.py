"""The ``genesis`` command line: argument parsing, dispatch, and error output.

Rules: user errors (a GenesisError) print one line ``<prog>: <what>`` with
the hint on the same line (``<prog>``: the name the command was run by, so
``fluffbuzz`` says ``fluffbuzz:``, in help and usage too), and exit with their kind's or class's code
(``pipeline.errors``: 2 for a user error, 1 for a request the server failed,
130 when cancelled); never a traceback. Command modules are imported only
when their command runs, so ``genesis --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pipeline.errors import EXIT_ABORTED as EXIT_ABORTED
from pipeline.errors import EXIT_FAILED as EXIT_FAILED
from pipeline.errors import EXIT_USAGE as EXIT_USAGE
from pipeline.errors import ErrorClass, UserErrorKind

if TYPE_CHECKING:
    from pipeline.errors import GenesisError

EXIT_INTERNAL = 70  # a bug in Genesis, never a user's or a server's doing


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="config file (default: $GENESIS_CONFIG_PATH or ~/.genesis/genesis.json)")


def _add_request(parser: argparse.ArgumentParser) -> None:
    """The chat request a command works on: a model ref plus a prompt or a request file."""
    parser.add_argument("--model", metavar="REF", help="provider/model, an alias, or a model id (default: agents.defaults.model.primary)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", metavar="TEXT", help="the user message")
    source.add_argument("--prompt-file", metavar="FILE", help="the user message from a UTF-8 text file; - reads stdin")
    source.add_argument("--request", metavar="FILE", help="an OpenAI-style chat completion body (JSON); - reads stdin")
    parser.add_argument("--system", metavar="TEXT", help="a system message before the prompt")
    parser.add_argument("--max-tokens", type=int, metavar="N", help="token limit for the answer")
    parser.add_argument("--no-stream", action="store_true", help="a non-streamed request (default with --prompt: streamed)")
    parser.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'", help="an extra request header (repeatable)")


def build_parser(prog: str = "genesis") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Exact wire requests for self-hosted OpenAI-compatible LLM servers (vLLM, inferrs, SGLang, llama.cpp).",
    )
    from pipeline.version import __version__

    parser.add_argument("--version", action="version", version=f"{prog} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    wire = commands.add_parser("wire", help="print the exact HTTP request for a chat request, without sending it")
    _add_request(wire)
    wire.add_argument("--json", action="store_true", help='print one JSON object {"method", "url", "headers", "body"}')
    wire.add_argument("--explain", action="store_true", help="also print what each stage changed, and why")
    wire.add_argument("--raw", action="store_true", help="print the body bytes exactly as sent (not pretty-printed)")
    wire.add_argument("--show-secrets", action="store_true", help="print keys and other secret headers instead of ***")
    _add_config(wire)

    infer = commands.add_parser("infer", help="run a model").add_subparsers(dest="infer_command", metavar="SUBJECT", required=True)
    model = infer.add_parser("model", help="model capabilities").add_subparsers(dest="model_command", metavar="ACTION", required=True)
    run = model.add_parser("run", help="send a prompt and stream the answer to stdout")
    _add_request(run)
    run.add_argument(
        "--json", action="store_true", help="print one JSON object at the end (ok, provider, model, attempts, outputs, usage, finishReason)"
    )
    run.add_argument(
        "--audit", metavar="FILE", help="append each attempt's exact request (secrets redacted), status, usage and timing as JSON lines"
    )
    run.add_argument("--no-fallbacks", action="store_true", help="do not try agents.defaults.model.fallbacks after a failure")
    run.add_argument(
        "--explain", action="store_true", help="also print what each stage did: request shaping, send, parse_stream, answer-side"
    )
    _add_config(run)
    embedding = infer.add_parser("embedding", help="embeddings: vectors for texts (POST /v1/embeddings)")
    embedding_commands = embedding.add_subparsers(dest="embedding_command", metavar="ACTION", required=True)
    create = embedding_commands.add_parser("create", help="print one vector (a JSON array) per --text, in order")
    create.add_argument("--model", metavar="REF", help="provider/model, an alias, or a model id (default: agents.defaults.model.primary)")
    create.add_argument("--text", action="append", required=True, metavar="TEXT", help="a text to embed (repeatable: one vector each)")
    create.add_argument("--dimensions", type=int, metavar="N", help="ask for vectors of N numbers (models that support it)")
    create.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'", help="an extra request header (repeatable)")
    create.add_argument(
        "--json", action="store_true", help="print one JSON object (ok, provider, model, dimensions, data, usage, attempts)"
    )
    create.add_argument(
        "--audit", metavar="FILE", help="append each attempt's exact request (secrets redacted), status and timing as JSON lines"
    )
    _add_config(create)

    models = commands.add_parser("models", help="list models, check servers, probe what a server accepts")
    models_commands = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    listing = models_commands.add_parser("list", help="configured, built-in and discovered models")
    listing.add_argument("--provider", metavar="ID", help="only this provider")
    listing.add_argument("--json", action="store_true", help="a JSON list of models")
    listing.add_argument("--plain", action="store_true", help="one provider/model ref per line")
    _add_config(listing)
    status = models_commands.add_parser("status", help="providers, their base URLs and where their keys come from")
    status.add_argument("--probe", action="store_true", help="also ask each server: GET /models and /health")
    status.add_argument("--provider", metavar="ID", help="only this provider")
    status.add_argument("--json", action="store_true", help="a JSON list of providers")
    _add_config(status)
    probe = models_commands.add_parser("probe", help="send tiny requests to find what a server accepts; print a compat block")
    probe.add_argument("ref", metavar="REF", help="provider/model")
    probe.add_argument("--json", action="store_true", help="the probe results as JSON")
    _add_config(probe)

    auth = commands.add_parser("auth", help="API keys stored in the state folder (auth profiles): set, list, remove")
    auth_commands = auth.add_subparsers(dest="auth_command", metavar="ACTION", required=True)
    store = auth_commands.add_parser("set", help="store a provider's key: typed without echo, or piped on stdin")
    store.add_argument("provider", metavar="PROVIDER", help="a built-in provider (vllm, sglang, ...) or one the config defines")
    _add_config(store)
    keys = auth_commands.add_parser("list", help="where each provider's key comes from (never the key)")
    keys.add_argument("--json", action="store_true", help="a JSON list of providers and key sources")
    _add_config(keys)
    forget = auth_commands.add_parser("remove", help="delete a provider's stored key")
    forget.add_argument("provider", metavar="PROVIDER")
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Run one command. ``argv`` None: the process's command line, under the name it was run by
    (``sys.argv[0]``); a list: those arguments, under ``prog`` (default ``genesis``). The name
    holds for this run's messages and is put back after it."""
    from pipeline.commands.output import DEFAULT_PROGRAM, program, program_name, use_program

    earlier = program()
    name = prog or (program_name(sys.argv[0]) if argv is None else DEFAULT_PROGRAM)
    use_program(name)
    try:
        return _main(build_parser(name), argv)
    finally:
        use_program(earlier)


def _main(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    from pipeline.commands.output import report_error, say
    from pipeline.errors import GenesisError

    _warnings_to_stderr()
    try:
        return _dispatch(args)
    except GenesisError as error:
        report_error(error)
        return exit_code(error)
    except KeyboardInterrupt:
        return ErrorClass.ABORTED.exit_code
    except BrokenPipeError:
        return 0
    except Exception as error:  # a bug: say so plainly; the traceback only on request
        if os.environ.get("GENESIS_DEBUG"):
            raise
        say(f"internal error: {_scrubbed(args, f'{type(error).__name__}: {error}')} (set GENESIS_DEBUG=1 for the traceback)", "error")
        return EXIT_INTERNAL


def exit_code(error: GenesisError) -> int:
    """The exit status for an error: its class's (a server failed: 1) or its kind's (the user's: 2).

    A kind that is not in the vocabulary (a caller's own GenesisError subclass) is a user error.

    >>> from pipeline.errors import ConfigError, ErrorClass, ProviderError
    >>> exit_code(ProviderError(ErrorClass.TIMEOUT, "slow", url="u")), exit_code(ConfigError("f", []))
    (1, 2)
    """
    kind = error.kind
    return kind.exit_code if isinstance(kind, (ErrorClass, UserErrorKind)) else EXIT_USAGE


def _scrubbed(args: Any, text: str) -> str:
    """An internal error's text without secrets: the config's and the auth profiles' (read again; either may be what
    failed) and any Bearer-shaped echo."""
    from pipeline.secrets import scrub

    secrets: set[str] = set()
    try:
        from pipeline.catalog import build_catalog
        from pipeline.config import load_config

        secrets |= build_catalog(load_config(getattr(args, "config", None), os.environ), os.environ).secrets
    except Exception:  # no config to learn secrets from: the patterns still apply
        pass
    try:
        from backends.auth_store import auth_file, read_auth_profiles

        secrets |= set(read_auth_profiles(auth_file(os.environ)).keys.values())
    except Exception:  # no usable auth profiles file: nothing more to hide
        pass
    return scrub(text, frozenset(secrets))


def _warnings_to_stderr() -> None:
    """Library warnings (logger ``genesis``: TLS verification off, a proxy that cannot be used, ...)
    print as ``<prog>: warning: ...`` lines, like the CLI's own."""
    import logging

    from pipeline.commands.output import WarningLines

    logger = logging.getLogger("genesis")
    if not logger.handlers:
        logger.addHandler(WarningLines())
        logger.propagate = False


def _dispatch(args: Any) -> int:
    if args.command == "wire":
        from pipeline.commands.wire import run_wire

        return run_wire(args)
    if args.command == "models":
        from pipeline.commands import models

        handlers = {"list": models.run_list, "status": models.run_status, "probe": models.run_probe}
        return handlers[args.models_command](args)
    if args.command == "auth":
        from pipeline.commands import auth

        auth_handlers = {"set": auth.run_set, "list": auth.run_list, "remove": auth.run_remove}
        return auth_handlers[args.auth_command](args)
    if args.command == "infer" and args.infer_command == "embedding":
        from pipeline.commands.embedding import run_embedding_create

        return run_embedding_create(args)
    if args.command == "infer":
        from pipeline.commands.infer import run_infer

        return run_infer(args)
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
