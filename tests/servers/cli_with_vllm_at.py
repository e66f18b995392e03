"""The genesis CLI with the built-in ``vllm`` provider moved to another base URL, for tests.

The built-in provider points at ``http://127.0.0.1:8000/v1``; the tests' own vLLM server runs
on a free port (a server on :8000 may be someone else's). Discovery and the other built-in
behaviour are then tested end to end against that server, exactly as ``python -m pipeline.cli``
runs (same ``sys.argv[0]``), with only the base URL changed::

    python -m tests.servers.cli_with_vllm_at http://127.0.0.1:PORT/v1 models list --provider vllm
"""

from __future__ import annotations

import runpy
import sys

import msgspec

from pipeline.providers import BUILTIN_PROVIDERS

if __name__ == "__main__":
    BUILTIN_PROVIDERS["vllm"] = msgspec.structs.replace(BUILTIN_PROVIDERS["vllm"], base_url=sys.argv.pop(1))
    runpy.run_module("pipeline.cli", run_name="__main__", alter_sys=True)
