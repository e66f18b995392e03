"""How long ``parse_config`` takes on a large config: plain JSON (fast path) and JSON5 with comments.

Run: ``.venv/bin/python bench/config_load.py [--size BYTES]``. Prints one line per
form: size, seconds (best of 3 for the fast path, one run for JSON5). No test
asserts a timing; tests/test_config_hostile.py only checks both forms load.
"""

from __future__ import annotations

import argparse
import json
import time


def big_config(size: int) -> dict[str, object]:
    """A valid config of about ``size`` bytes: one provider with many models."""
    models = []
    index = 0
    while len(json.dumps(models)) < size - 200:
        batch = [
            {
                "id": f"org/model-{index + n}",
                "name": f"Model {index + n}",
                "contextWindow": 32768,
                "maxTokens": 4096,
                "cost": {"input": 0.1, "output": 0.2},
                "headers": {"X-Route": f"pool-{(index + n) % 7}"},
            }
            for n in range(500)
        ]
        models.extend(batch)
        index += len(batch)
    return {"models": {"providers": {"vllm": {"baseUrl": "http://127.0.0.1:8000/v1", "models": models}}}}


def as_json5(config: dict[str, object]) -> str:
    """The same config with a comment per model and trailing commas: JSON5, not JSON."""
    text = json.dumps(config).replace('{"id"', '\n// a model\n{"id"')
    return "// a large JSON5 config\n" + text.replace("}]}}}", "},]}}}")


def timed(text: str, runs: int) -> float:
    from pipeline.config import parse_config

    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        parse_config(text, {})
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1_000_000, help="target size in bytes (default 1 MB)")
    parser.add_argument("--skip-json5", action="store_true", help="only the plain JSON fast path")
    args = parser.parse_args()
    config = big_config(args.size)
    plain = json.dumps(config)
    print(f"plain JSON     {len(plain):>9} bytes  {timed(plain, 3):7.3f} s")
    if not args.skip_json5:
        text = as_json5(config)
        print(f"JSON5+comments {len(text):>9} bytes  {timed(text, 1):7.3f} s")


if __name__ == "__main__":
    main()
