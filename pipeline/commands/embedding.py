"""``genesis infer embedding create``: vectors for one or more texts, from a ``/v1/embeddings`` server.

Output: one JSON array of numbers per ``--text``, one per line, in the order given (so a
shell pipe gets a line per vector); ``--json``: one object with the vectors, the model, the
usage and the attempts, or, on failure, ``ok: false`` with the error (as ``infer model run``).
Errors are one line on stderr with the hint, and the exit code of their class or kind.
"""

from __future__ import annotations

import sys
from typing import Any

import msgspec

from pipeline.commands.common import load_genesis, parse_headers
from pipeline.commands.infer import attempt_json, error_json
from pipeline.commands.output import report_error, warn
from pipeline.errors import EXIT_USAGE, ErrorClass, GenesisError, ProviderError, UserErrorKind

CAPABILITY = "embedding.create"


def run_embedding_create(args: Any) -> int:
    from backends.audit import JsonlAudit

    try:
        genesis = load_genesis(args)
        headers = parse_headers(args.header)
        request: dict[str, Any] = {"input": list(args.text)}
        if args.dimensions is not None:
            request["dimensions"] = args.dimensions
        genesis.warn = warn
        audit = JsonlAudit(args.audit) if args.audit else None
        embeddings = genesis.embed_sync(args.model, request, headers=headers, audit=audit)
    except KeyboardInterrupt:
        return _fail(args, GenesisError("aborted: the request was cancelled"), ErrorClass.ABORTED)
    except GenesisError as error:
        return _fail(args, error, error.kind)
    if args.json:
        answer = {
            "ok": True,
            "capability": CAPABILITY,
            "provider": embeddings.provider,
            "model": embeddings.model,
            "ref": embeddings.ref,
            "dimensions": embeddings.dimensions,
            "data": [{"index": index, "embedding": vector} for index, vector in enumerate(embeddings.vectors)],
            "usage": None
            if embeddings.usage is None
            else {"promptTokens": embeddings.usage.prompt_tokens, "totalTokens": embeddings.usage.total_tokens},
            "attempts": [attempt_json(attempt) for attempt in embeddings.attempts],
        }
        sys.stdout.write(msgspec.json.encode(answer).decode() + "\n")
        return 0
    encoder = msgspec.json.Encoder()
    sys.stdout.write("".join(encoder.encode(vector).decode() + "\n" for vector in embeddings.vectors))
    return 0


def _fail(args: Any, error: GenesisError, kind: Any) -> int:
    report_error(error)
    if getattr(args, "json", False):
        detail = error_json(error, kind)
        attempts = list(error.attempts or []) if isinstance(error, ProviderError) else []
        failed = {"ok": False, "capability": CAPABILITY, "attempts": [attempt_json(attempt) for attempt in attempts], "error": detail}
        sys.stdout.write(msgspec.json.encode(failed).decode() + "\n")
    return kind.exit_code if isinstance(kind, (ErrorClass, UserErrorKind)) else EXIT_USAGE
