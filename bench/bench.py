"""Genesis vs LiteLLM (hosted_vllm) vs the OpenAI SDK: one run, every benchmark, one table.

    bench/run                      # full run (sets up bench/.venv first)
    bench/run --smoke              # tiny sizes, a few seconds; peers skipped if not installed
    bench/run --only build,stream  # build | stream | cold | concurrency (comma-separated)
    bench/run --json out.json      # also write every number
    python bench/bench.py --smoke  # the same without the venv setup (any Python with the libraries)

Each library runs in its own worker process (``--worker LIB``) so imports, caches and
background threads of one cannot slow another, and the client CPU time of the
concurrency benchmark is that library's alone. The harness (this process) starts the
loopback SSE server, runs the cold-start subprocesses and the msgspec floor, gathers
the workers' JSON and prints medians, spreads (p10–p90 over rounds) and ratios.

See bench/README.md for what each benchmark does exactly.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

# Never let LiteLLM fetch its cost map from the internet (in workers and cold-start children).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import stream_fixture as F  # noqa: E402
import workload as W  # noqa: E402

LIBS = ("genesis", "genesis-uvloop", "openai", "litellm")
PEERS = ("openai", "litellm")
#: Genesis again, its worker's event loop uvloop (the ``genesis[fast]`` extra): the rows where the loop matters
UVLOOP = "genesis-uvloop"
MODULES = {"genesis": "genesis_side", UVLOOP: "genesis_side", "openai": "openai_side", "litellm": "litellm_side"}
#: the import that tells whether a library is installed (without importing it)
PROBES = {"genesis": "pipeline", UVLOOP: "uvloop", "openai": "openai", "litellm": "litellm"}
#: the stream rows the uvloop worker runs (the in-memory ones do no I/O: the loop barely shows)
UVLOOP_STREAM_ROWS = ("Genesis.stream, a read per event", "Genesis.stream over loopback TCP")
BENCHES = ("build", "stream", "cold", "concurrency")
ALIASES = {
    "request-build": "build",
    "build": "build",
    "call": "build",
    "stream": "stream",
    "stream-parse": "stream",
    "parse": "stream",
    "floor": "stream",
    "cold": "cold",
    "cold-start": "cold",
    "import": "cold",
    "concurrency": "concurrency",
    "concurrent": "concurrency",
}


# --------------------------------------------------------------------------------------
# sizes
# --------------------------------------------------------------------------------------


@dataclass
class Spec:
    smoke: bool = False
    # 1. request build / non-streaming call
    build_rounds: int = 15
    build_round_seconds: float = 0.25  # each round runs as many requests as fit (calibrated)
    build_warmup_seconds: float = 0.5
    build_fixed_iters: int = 0  # smoke: this many requests per round instead of calibrating
    # 2. stream parse
    chunks: int = F.DEFAULT_CHUNKS
    piece_size: int = F.PIECE_SIZE
    stream_warmup: int = 2
    stream_rounds: int = 15
    floor_rounds: int = 25
    # 3. cold start
    cold_runs: int = 10
    cold_warmup: int = 1
    cold_peer_cli: bool = True
    # 4. concurrency
    concurrency: list[int] = field(default_factory=lambda: [10, 100, 1000])
    concurrency_rounds: dict[str, int] = field(default_factory=lambda: {"10": 5, "100": 5, "1000": 3})
    tokens: int = 50
    tick_ms: float = 5.0
    round_timeout: float = 180.0
    worker_timeout: float = 900.0

    @staticmethod
    def make(smoke: bool) -> Spec:
        if not smoke:
            return Spec()
        return Spec(
            smoke=True,
            build_rounds=3,
            build_round_seconds=0.0,
            build_warmup_seconds=0.0,
            build_fixed_iters=3,
            chunks=20,
            piece_size=1024,
            stream_warmup=1,
            stream_rounds=3,
            floor_rounds=3,
            cold_runs=1,
            cold_warmup=0,
            cold_peer_cli=False,
            concurrency=[5],
            concurrency_rounds={"5": 1},
            tokens=50,
            tick_ms=1.0,
            round_timeout=30.0,
            worker_timeout=120.0,
        )


# --------------------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    xs = sorted(values)
    if not xs:
        return float("nan")
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def stats(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "p10": percentile(values, 0.10),
        "p90": percentile(values, 0.90),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


# --------------------------------------------------------------------------------------
# the worker: one library, every in-process benchmark
# --------------------------------------------------------------------------------------


def log(lib: str, msg: str) -> None:
    print(f"  [{lib}] {msg}", file=sys.stderr, flush=True)


def _err(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) < 400 else text[:400] + "…"


async def worker_build(lib: str, side: Any, spec: Spec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    body = side.built_body()
    out["body"] = base64.b64encode(body).decode()
    # request build (sync), then a whole non-streaming call through the instant mock (async)
    for name, fn, is_async in (("build", side.build_once, False), ("call", side.call_once, True)):

        async def once(fn: Any = fn, is_async: bool = is_async) -> float:
            return (await fn()) if is_async else fn()

        try:
            if spec.build_fixed_iters:
                iters = spec.build_fixed_iters
                for _ in range(2):
                    await once()
            else:
                t_end = time.perf_counter() + spec.build_warmup_seconds
                warm: list[float] = []
                while time.perf_counter() < t_end or len(warm) < 20:
                    warm.append(await once())
                per = statistics.median(warm[len(warm) // 2 :])
                iters = max(5, int(spec.build_round_seconds / max(per, 1e-7)))
            rounds = []
            for _ in range(spec.build_rounds):
                total = 0.0
                for _ in range(iters):
                    total += await once()
                rounds.append(total / iters)
            out[name] = {"unit": "s", **stats(rounds), "iters_per_round": iters}
            log(lib, f"{name}: {fmt_time(out[name]['median'])} per request ({iters} per round)")
        except Exception as exc:
            out[name] = {"error": _err(exc)}
            log(lib, f"{name}: ERROR {_err(exc)}")
            traceback.print_exc(file=sys.stderr)
    return out


async def worker_stream(lib: str, side: Any, spec: Spec, stream_url: str | None = None) -> dict[str, Any]:
    rec = F.recording(spec.chunks, piece_size=spec.piece_size)
    expected = W.expected_summary(rec.payloads)
    out: dict[str, Any] = {}
    paths = dict(side.stream_paths())
    if stream_url:  # the same recording from the loopback server, one HTTP chunk per event
        paths.update(side.loopback_paths(stream_url))
    if lib == UVLOOP:
        paths = {name: fn for name, fn in paths.items() if name in UVLOOP_STREAM_ROWS}
    for variant, fn in paths.items():

        async def once(fn: Any = fn) -> tuple[float, float, list]:
            r = fn(rec.pieces)
            return (await r) if asyncio.iscoroutine(r) else r

        try:
            for _ in range(spec.stream_warmup):
                await once()
            rates, tails, elapsed, cpus = [], [], [], []
            items = 0
            result: list = []
            for _ in range(spec.stream_rounds):
                cpu0 = time.process_time()
                e, tail, result = await once()
                cpus.append((time.process_time() - cpu0) / rec.chunks)  # this process's CPU: the client's alone on loopback
                elapsed.append(e)
                rates.append(rec.chunks / e)
                tails.append(tail)
                items = len(result)
            diff = side.summarize(result).diff(expected)
            entry = {
                "unit": "chunks/s",
                **stats(rates),
                "seconds": stats(elapsed),
                "tail": stats(tails),
                "cpu_per_chunk": stats(cpus),
                "items_out": items,
            }
            if diff:
                entry["error"] = "output differs from the recording: " + "; ".join(diff)
                log(lib, f"stream {variant}: MISMATCH {entry['error']}")
            else:
                log(lib, f"stream {variant}: {fmt_rate(entry['median'])} ({items} items out, verified)")
            out[variant] = entry
        except Exception as exc:
            out[variant] = {"error": _err(exc)}
            log(lib, f"stream {variant}: ERROR {_err(exc)}")
            traceback.print_exc(file=sys.stderr)
    return out


def _raise_nofile() -> None:
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = hard if hard != resource.RLIM_INFINITY else 65536
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except Exception:
        pass


def server_stats(base_url: str) -> dict[str, int]:
    """The loopback server's counters (streams started/finished, non-streamed completions)."""
    import http.client
    from urllib.parse import urlsplit

    u = urlsplit(base_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        conn.request("GET", "/stats")
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


async def worker_concurrency(lib: str, side: Any, spec: Spec, base_url: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _raise_nofile()
    try:
        await side.concurrency_open(base_url)
    except Exception as exc:
        log(lib, f"concurrency: ERROR {_err(exc)}")
        return {str(n): {"error": _err(exc)} for n in spec.concurrency}

    expected = W.stream_text(spec.tokens)

    async def run(n: int) -> dict[str, Any]:
        before = server_stats(base_url)
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        try:
            results = await asyncio.wait_for(
                asyncio.gather(*(side.one_stream() for _ in range(n)), return_exceptions=True), timeout=spec.round_timeout
            )
        except TimeoutError:
            results = [TimeoutError(f"round did not finish in {spec.round_timeout:.0f} s")] * n
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        after = server_stats(base_url)
        streamed = after["streams_done"] - before["streams_done"]
        ok = sum(1 for r in results if r == expected)
        tokens = spec.tokens * ok  # tokens the server sent on streams that arrived whole
        errors = [r for r in results if r != expected]
        first = None
        if errors:
            e = errors[0]
            first = (
                _err(e)
                if isinstance(e, BaseException)
                else (f"stream text differs from what the server sent ({len(str(e))} vs {len(expected)} chars)")
            )
        if streamed < ok:  # whole text, but the server did not stream it: not the work measured here
            first = first or (
                f"the server streamed {streamed} answers for {n} requests ({after['completions'] - before['completions']} non-streamed)"
            )
            errors += [None] * (ok - streamed)
            ok = streamed
            tokens = spec.tokens * ok
        return {"ok": ok, "errors": len(errors), "tokens": tokens, "cpu": cpu, "wall": wall, "first_error": first}

    try:
        await run(min(spec.concurrency))  # warm-up: imports, pools, first connections
    except Exception as exc:
        log(lib, f"concurrency warm-up: {_err(exc)}")
    for n in spec.concurrency:
        rounds = []
        for _ in range(spec.concurrency_rounds.get(str(n), 3)):
            rounds.append(await run(n))
        per_token = [r["cpu"] / max(r["tokens"], 1) for r in rounds]
        entry: dict[str, Any] = {
            "unit": "s/token",
            **stats(per_token),
            "wall": stats([r["wall"] for r in rounds]),
            "cpu": stats([r["cpu"] for r in rounds]),
            "ok": sum(r["ok"] for r in rounds),
            "streams": n * len(rounds),
            "errors": sum(r["errors"] for r in rounds),
        }
        firsts = [r["first_error"] for r in rounds if r["first_error"]]
        if firsts:
            entry["first_error"] = firsts[0]
        if entry["errors"]:
            entry["error"] = f"{entry['errors']} of {entry['streams']} streams failed: {firsts[0]}"
        out[str(n)] = entry
        log(
            lib,
            f"concurrency N={n}: {fmt_time(entry['median'])} CPU/token, {entry['ok']}/{entry['streams']} ok, "
            f"wall {fmt_time(entry['wall']['median'])}",
        )
    try:
        await side.concurrency_close()
    except Exception as exc:
        log(lib, f"concurrency close: {_err(exc)}")
    return out


async def worker_main(lib: str, spec: Spec, benches: list[str], base_url: str | None, stream_url: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {"lib": lib, "results": {}}
    t0 = time.perf_counter()
    try:
        mod = importlib.import_module(MODULES[lib])
        result["version"] = mod.version()
        side = mod.Side()
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        result["error"] = _err(exc)
        return result
    log(lib, f"{result['version']} ready in {time.perf_counter() - t0:.1f} s")
    if "build" in benches and lib != UVLOOP:
        result["results"]["build"] = await worker_build(lib, side, spec)
    if "stream" in benches:
        result["results"]["stream"] = await worker_stream(lib, side, spec, stream_url)
    if "concurrency" in benches and base_url:
        result["results"]["concurrency"] = await worker_concurrency(lib, side, spec, base_url)
    try:
        await side.aclose()
    except Exception:
        pass
    result["seconds"] = time.perf_counter() - t0
    log(lib, f"done in {result['seconds']:.0f} s")
    return result


def run_worker_inline(args: argparse.Namespace) -> None:
    spec = Spec(**json.loads(args.spec))
    if importlib.util.find_spec("pipeline") is None:  # Genesis not installed: use the work tree
        sys.path.append(str(ROOT))
    benches = args.benches.split(",")
    if args.worker == UVLOOP:
        import uvloop

        uvloop.install()  # every asyncio.run of this worker runs on uvloop
    result = asyncio.run(worker_main(args.worker, spec, benches, args.base_url, args.stream_url))
    sys.stdout.write("\n@@RESULT@@" + json.dumps(result) + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------------------
# the harness
# --------------------------------------------------------------------------------------


def installed(lib: str) -> bool:
    if lib == UVLOOP:
        return installed("genesis") and importlib.util.find_spec("uvloop") is not None
    if lib == "genesis":
        if importlib.util.find_spec("pipeline") is not None:
            return True
        return (ROOT / "pipeline" / "__init__.py").exists()
    return importlib.util.find_spec(PROBES[lib]) is not None


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def spawn_worker(lib: str, spec: Spec, benches: list[str], base_url: str | None, stream_url: str | None = None) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        lib,
        "--spec",
        json.dumps(asdict(spec)),
        "--benches",
        ",".join(benches),
    ]
    if base_url:
        cmd += ["--base-url", base_url]
    if stream_url:
        cmd += ["--stream-url", stream_url]
    try:
        proc = subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=None, env=child_env(), cwd=str(HERE), timeout=spec.worker_timeout, text=True
        )
    except subprocess.TimeoutExpired:
        return {"lib": lib, "error": f"worker timed out after {spec.worker_timeout:.0f} s", "results": {}}
    marker = proc.stdout.rfind("@@RESULT@@")
    if marker < 0:
        tail = proc.stdout.strip().splitlines()[-5:]
        return {"lib": lib, "error": f"worker exited {proc.returncode} without a result: {' | '.join(tail)}", "results": {}}
    return json.loads(proc.stdout[marker + len("@@RESULT@@") :].strip().splitlines()[0])


class SSEServer:
    def __init__(self, spec: Spec, *, recording: int = 0) -> None:
        """The concurrency server (``spec.tokens`` per stream, ``spec.tick_ms``), or with ``recording``
        the stream benchmark's recording of that many chunks, written as fast as the loop turns (tick 0)."""
        pacing = ["--recording", str(recording), "--tick-ms", "0"] if recording else ["--tick-ms", str(spec.tick_ms)]
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "sse_server.py"),
                "--port",
                "0",
                "--tokens",
                str(spec.tokens),
                *pacing,
                "--max-seconds",
                str(spec.worker_timeout * 4),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.close()
            raise RuntimeError(f"sse_server did not start: {line!r}")
        self.base_url = f"http://127.0.0.1:{int(line.split()[1])}/v1"

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()  # the server stops when its stdin closes
                self.proc.wait(timeout=5)
            except Exception:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()


FLOOR_DECODE = "msgspec.json.decode (untyped)"


def floor(spec: Spec) -> dict[str, Any]:
    """Bare msgspec.json.decode of the same payloads: no framing, no events."""
    import msgspec

    rec = F.recording(spec.chunks, piece_size=spec.piece_size)
    payloads = rec.payloads
    decode = msgspec.json.decode
    out = {}

    # The same chunk shape as a typed schema (only the fields a client uses), built with
    # defstruct because this module uses postponed annotations.
    opt = lambda t: t | None  # noqa: E731
    Fn = msgspec.defstruct("Fn", [("name", opt(str), None), ("arguments", opt(str), None)])
    Tc = msgspec.defstruct("Tc", [("index", int, 0), ("id", opt(str), None), ("function", opt(Fn), None)])
    Delta = msgspec.defstruct("Delta", [("content", opt(str), None), ("reasoning", opt(str), None), ("tool_calls", opt(list[Tc]), None)])
    Choice = msgspec.defstruct("Choice", [("delta", Delta), ("finish_reason", opt(str), None)])
    Usage = msgspec.defstruct("Usage", [("prompt_tokens", int, 0), ("completion_tokens", int, 0), ("total_tokens", int, 0)])
    Chunk = msgspec.defstruct("Chunk", [("choices", list[Choice]), ("usage", opt(Usage), None)])

    typed = msgspec.json.Decoder(Chunk).decode
    for name, fn in ((FLOOR_DECODE, decode), ("msgspec typed Struct decode", typed)):
        for p in payloads:
            fn(p)
        rates = []
        for _ in range(spec.floor_rounds):
            t0 = time.perf_counter()
            for p in payloads:
                fn(p)
            rates.append(len(payloads) / (time.perf_counter() - t0))
        out[name] = {"unit": "chunks/s", **stats(rates)}
    out["_version"] = msgspec.__version__
    return out


def cold_start(spec: Spec, libs: list[str]) -> dict[str, Any]:
    """Fresh interpreters: import time measured inside the child, and the whole process's wall time."""
    py = sys.executable
    env = child_env()
    if importlib.util.find_spec("pipeline") is None and (ROOT / "pipeline").exists():
        env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    rows: dict[str, Any] = {}
    probe = "import time,sys; t=time.perf_counter(); {stmt}; sys.stdout.write(repr(time.perf_counter()-t))"
    targets: list[tuple[str, str, list[str], bool]] = [("python", "python -c pass (interpreter start)", [py, "-c", "pass"], False)]
    for lib in libs:
        if lib == UVLOOP:
            continue
        stmt = {"genesis": "from pipeline import Genesis", "openai": "from openai import AsyncOpenAI", "litellm": "import litellm"}[lib]
        targets.append((lib, stmt, [py, "-c", probe.format(stmt=stmt)], True))
    bindir = Path(py).parent
    if "genesis" in libs:
        exe = shutil.which("genesis", path=str(bindir)) or shutil.which("genesis")
        targets.append(("genesis", "genesis --help", [exe, "--help"] if exe else [], False))
    if spec.cold_peer_cli and "litellm" in libs:
        exe = shutil.which("litellm", path=str(bindir))
        if exe:
            targets.append(("litellm", "litellm --help (its proxy CLI)", [exe, "--help"], False))
    for lib, label, cmd, inner in targets:
        key = f"{lib}: {label}"
        if not cmd:
            rows[key] = {"lib": lib, "label": label, "error": "executable not found next to this Python or on PATH"}
            continue
        walls, imports = [], []
        error = None
        for i in range(spec.cold_warmup + spec.cold_runs):
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True, timeout=120, cwd=str(HERE))
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                error = f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:] or ''}"
                break
            if i >= spec.cold_warmup:
                walls.append(wall)
                if inner:
                    imports.append(float(proc.stdout.strip().splitlines()[-1]))
        if error:
            rows[key] = {"lib": lib, "label": label, "error": error}
            print(f"  [cold] {label}: ERROR {error}", file=sys.stderr, flush=True)
            continue
        row: dict[str, Any] = {"lib": lib, "label": label, "unit": "s", "wall": stats(walls)}
        row.update(stats(imports) if inner else stats(walls))
        row["kind"] = "import" if inner else "process"
        rows[key] = row
        print(f"  [cold] {label}: {fmt_time(row['median'])}", file=sys.stderr, flush=True)
    return rows


# --------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------


def fmt_time(s: float | None) -> str:
    if s is None or s != s:
        return "—"
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def fmt_rate(r: float | None) -> str:
    if r is None or r != r:
        return "—"
    if r >= 1e6:
        return f"{r / 1e6:.2f} M/s"
    if r >= 1e3:
        return f"{r / 1e3:.1f} k/s"
    return f"{r:.0f} /s"


def fmt_ratio(x: float | None) -> str:
    if x is None or x != x:
        return "—"
    return f"{x:.2f}×" if x < 10 else f"{x:.1f}×" if x < 100 else f"{x:.0f}×"


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    last = len(header) - 1

    def line(cells: list[str]) -> str:  # names and notes left, numbers right
        return "  ".join(
            c.ljust(w) if i < 2 or i == last else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [title, line(header), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    return "\n".join(out)


def cost_ratio(entry: dict, ref: dict | None) -> float | None:
    """How many times Genesis's cost this row is (>1: Genesis is faster). Rates invert."""
    if not ref or "median" not in ref or "median" not in entry or entry.get("error") or ref.get("error"):
        return None
    if entry.get("unit") == "chunks/s":
        return ref["median"] / entry["median"]
    return entry["median"] / ref["median"]


def body_notes(bodies: dict[str, bytes]) -> dict[str, str]:
    expected = {"model": W.MODEL, **W.REQUEST}
    notes = {}
    for lib, raw in bodies.items():
        try:
            body = json.loads(raw)
        except ValueError:
            notes[lib] = f"{len(raw)} B, not JSON"
            continue
        parts = [f"{len(raw)} B"]
        added = sorted(set(body) - set(expected))
        missing = sorted(set(expected) - set(body))
        changed = [k for k in expected if k in body and body[k] != expected[k] and k != "messages"]
        if added:
            parts.append("+" + ",".join(added))
        if missing:
            parts.append("-" + ",".join(missing))
        if changed:
            parts.append("~" + ",".join(changed))
        msgs = body.get("messages")
        if isinstance(msgs, list):
            diffs = sum(1 for a, b in zip(msgs, expected["messages"], strict=False) if a != b)
            diffs += abs(len(msgs) - len(expected["messages"]))
            if diffs:
                parts.append(f"{diffs} message(s) reshaped")
        notes[lib] = "; ".join(parts)
    return notes


def report(results: dict[str, Any], spec: Spec) -> str:
    libs: dict[str, dict] = results["libraries"]
    label = {lib: f"{lib} {info.get('version', '')}".strip() for lib, info in libs.items()}
    if UVLOOP in label:
        label[UVLOOP] = f"genesis {libs[UVLOOP].get('version', '')} on uvloop"
    sections = []

    def get(lib: str, bench: str) -> dict:
        return libs.get(lib, {}).get("results", {}).get(bench, {}) or {}

    # 1. build
    if "build" in results["benches"]:
        rows = []
        bodies = {lib: base64.b64decode(get(lib, "build")["body"]) for lib in libs if "body" in get(lib, "build")}
        notes = body_notes(bodies)
        for metric, what in (("build", "request → wire bytes"), ("call", "whole non-streaming call, instant mock")):
            ref = get("genesis", "build").get(metric)
            for lib in libs:
                e = get(lib, "build").get(metric)
                if e is None:
                    if libs[lib].get("error"):
                        rows.append([label[lib], what, "—", "—", "—", libs[lib]["error"][:90]])
                    continue
                if "error" in e:
                    rows.append([label[lib], what, "—", "—", "—", "ERROR " + e["error"][:90]])
                    continue
                rows.append(
                    [
                        label[lib],
                        what,
                        fmt_time(e["median"]),
                        f"{fmt_time(e['p10'])}–{fmt_time(e['p90'])}",
                        fmt_ratio(cost_ratio(e, ref)),
                        ((notes.get(lib, "") if metric == "build" else "") + f" ({e['iters_per_round']}/round)").strip(),
                    ]
                )
        sections.append(
            table(
                f"1. Request build: 10 messages + 2 tools, stream=true; time per request (median of {spec.build_rounds} rounds)",
                ["library", "what", "median", "p10–p90", "vs genesis", "body / notes"],
                rows,
            )
        )

    # 2. stream
    if "stream" in results["benches"]:
        rows = []
        ref = get("genesis", "stream").get("Genesis.stream")
        fl = results.get("floor", {})
        decode = fl.get(FLOOR_DECODE)
        for lib in libs:
            entries = get(lib, "stream")
            if not entries and libs[lib].get("error"):
                rows.append([label[lib], "—", "—", "—", "—", "—", "—", "—", libs[lib]["error"][:90]])
            for variant, e in entries.items():
                if "median" not in e:
                    rows.append([label[lib], variant, "—", "—", "—", "—", "—", "—", "ERROR " + e.get("error", "")[:90]])
                    continue
                note = ("ERROR " + e["error"][:90]) if e.get("error") else f"verified; {e['items_out']} items out"
                if "loopback" in variant and "cpu_per_chunk" in e:  # the wall time there is the server's pace too
                    note += f"; client CPU {fmt_time(e['cpu_per_chunk']['median'])}/chunk"
                rows.append(
                    [
                        label[lib],
                        variant,
                        fmt_rate(e["median"]),
                        f"{fmt_rate(e['p10'])}–{fmt_rate(e['p90'])}",
                        fmt_time(1 / e["median"]),
                        fmt_ratio(cost_ratio(e, ref)),
                        fmt_ratio(cost_ratio(e, decode)),
                        fmt_time(e["tail"]["median"]),
                        note,
                    ]
                )
        for variant, e in fl.items():
            if variant.startswith("_"):
                continue
            rows.append(
                [
                    f"floor (msgspec {fl.get('_version', '')})",
                    variant,
                    fmt_rate(e["median"]),
                    f"{fmt_rate(e['p10'])}–{fmt_rate(e['p90'])}",
                    fmt_time(1 / e["median"]),
                    fmt_ratio(cost_ratio(e, ref)),
                    fmt_ratio(cost_ratio(e, decode)),
                    "—",
                    "payloads only: no SSE framing, no events",
                ]
            )
        sections.append(
            table(
                f"2. Stream parse: {spec.chunks} vLLM chunks in {spec.piece_size // 1024 or spec.piece_size} "
                f'{"KiB" if spec.piece_size >= 1024 else "B"} reads, one event per read ("per event"/"per feed"), or from '
                f"the loopback server; chunks per second (median of {spec.stream_rounds} rounds; vs genesis = Genesis.stream; "
                f"vs decode = the untyped msgspec floor)",
                ["library", "path", "median", "p10–p90", "per chunk", "vs genesis", "vs decode", "tail", "notes"],
                rows,
            )
        )

    # 3. cold start
    if "cold" in results["benches"]:
        rows = []
        cold = results.get("cold", {})
        refs = {
            kind: next((r for r in cold.values() if r.get("lib") == "genesis" and r.get("kind") == kind), None)
            for kind in ("import", "process")
        }
        for r in cold.values():
            if r.get("error"):
                rows.append([r["lib"], r["label"], "—", "—", "—", "—", "ERROR " + r["error"][:80]])
                continue
            ratio = cost_ratio(r, refs[r["kind"]]) if r["lib"] != "python" else None
            rows.append(
                [
                    r["lib"],
                    r["label"],
                    fmt_time(r["median"]),
                    f"{fmt_time(r['p10'])}–{fmt_time(r['p90'])}",
                    fmt_time(r["wall"]["median"]),
                    fmt_ratio(ratio),
                    "import time inside the child" if r["kind"] == "import" else "process wall time",
                ]
            )
        sections.append(
            table(
                f"3. Cold start: {spec.cold_runs} fresh processes each (median)",
                ["library", "what", "median", "p10–p90", "process wall", "vs genesis", "measured"],
                rows,
            )
        )

    # 4. concurrency
    if "concurrency" in results["benches"]:
        rows = []
        for n in spec.concurrency:
            ref = get("genesis", "concurrency").get(str(n))
            for lib in libs:
                e = get(lib, "concurrency").get(str(n))
                if e is None:
                    if libs[lib].get("error"):
                        rows.append([str(n), label[lib], "—", "—", "—", "—", "—", libs[lib]["error"][:80]])
                    continue
                if "median" not in e:
                    rows.append([str(n), label[lib], "—", "—", "—", "—", "—", "ERROR " + e.get("error", "")[:80]])
                    continue
                rows.append(
                    [
                        str(n),
                        label[lib],
                        f"{e['ok']}/{e['streams']}",
                        fmt_time(e["median"]),
                        f"{fmt_time(e['p10'])}–{fmt_time(e['p90'])}",
                        fmt_time(e["wall"]["median"]),
                        fmt_ratio(cost_ratio(e, ref)),
                        ("ERROR " + e["error"][:80]) if e.get("error") else "",
                    ]
                )
        sections.append(
            table(
                f"4. Concurrency: N streams of {spec.tokens} tokens on one event loop vs the loopback server "
                f"(tick {spec.tick_ms:g} ms); client CPU per streamed token",
                ["N", "library", "ok", "CPU/token", "p10–p90", "wall", "vs genesis", "notes"],
                rows,
            )
        )
    return "\n\n".join(sections)


def collect_errors(results: dict[str, Any]) -> list[str]:
    errors = []
    for lib, info in results["libraries"].items():
        if info.get("error"):
            errors.append(f"{lib}: {info['error']}")
        for bench, entries in info.get("results", {}).items():
            for name, e in entries.items():
                if isinstance(e, dict) and e.get("error"):
                    errors.append(f"{lib} {bench} {name}: {e['error']}")
    for name, r in results.get("cold", {}).items():
        if r.get("error"):
            errors.append(f"cold {name}: {r['error']}")
    return errors


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except Exception:
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Genesis vs LiteLLM vs the OpenAI SDK (see bench/README.md)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (a few seconds); skips peers not installed")
    ap.add_argument("--only", default="", help="comma-separated: build, stream, cold, concurrency")
    ap.add_argument("--libs", default=",".join(LIBS), help="comma-separated subset of: genesis, openai, litellm")
    ap.add_argument("--json", dest="json_path", default=None, help="write all results to this file")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--spec", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--benches", default="", help=argparse.SUPPRESS)
    ap.add_argument("--base-url", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--stream-url", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        run_worker_inline(args)
        return 0

    spec = Spec.make(args.smoke)
    if args.only:
        try:
            benches = sorted({ALIASES[b.strip()] for b in args.only.split(",") if b.strip()}, key=BENCHES.index)
        except KeyError as exc:
            ap.error(f"--only: unknown benchmark {exc}; choose from {', '.join(BENCHES)}")
    else:
        benches = list(BENCHES)
    wanted = [lib.strip() for lib in args.libs.split(",") if lib.strip()]
    for lib in wanted:
        if lib not in LIBS:
            ap.error(f"--libs: unknown library {lib!r}; choose from {', '.join(LIBS)}")

    t_start = time.perf_counter()
    print(
        f"Genesis benchmark ({'smoke' if spec.smoke else 'full'}): {', '.join(benches)} | "
        f"Python {platform.python_version()} | {os.cpu_count()} CPUs | {platform.machine()}",
        flush=True,
    )
    libs, skipped = [], []
    for lib in wanted:
        if installed(lib):
            libs.append(lib)
        elif (spec.smoke and lib in PEERS) or lib == UVLOOP:  # uvloop: an extra (genesis[fast]), measured when there
            skipped.append(lib)
            print(f"skipped {lib}: not installed (smoke mode)", flush=True)
        else:
            libs.append(lib)  # its worker reports the import error

    results: dict[str, Any] = {
        "meta": {
            "smoke": spec.smoke,
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "repo_commit": git_commit(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "skipped": skipped,
            "spec": asdict(spec),
        },
        "benches": benches,
        "libraries": {},
        "floor": {},
        "cold": {},
    }

    server = stream_server = None
    worker_benches = [b for b in benches if b in ("build", "stream", "concurrency")]
    try:
        if "concurrency" in benches:
            server = SSEServer(spec)
            print(f"loopback SSE server at {server.base_url} ({spec.tokens} tokens per stream)", flush=True)
        if "stream" in benches:
            stream_server = SSEServer(spec, recording=spec.chunks)
            print(f"loopback SSE server at {stream_server.base_url} (the {spec.chunks}-chunk recording, unpaced)", flush=True)
        if worker_benches:
            for lib in libs:
                print(f"{lib}: {', '.join(worker_benches)} …", flush=True)
                results["libraries"][lib] = spawn_worker(
                    lib, spec, worker_benches, server.base_url if server else None, stream_server.base_url if stream_server else None
                )
                if results["libraries"][lib].get("error"):
                    print(f"  [{lib}] ERROR {results['libraries'][lib]['error']}", flush=True)
        else:
            results["libraries"] = {lib: {"lib": lib, "results": {}} for lib in libs}
    finally:
        for running in (server, stream_server):
            if running:
                running.close()
    if "stream" in benches:
        print("floor: msgspec decode of the same payloads …", flush=True)
        results["floor"] = floor(spec)
    if "cold" in benches:
        print("cold start …", flush=True)
        results["cold"] = cold_start(spec, libs)
    for lib in libs:  # versions for libraries that ran no worker
        if lib == UVLOOP:
            continue
        info = results["libraries"].setdefault(lib, {"lib": lib, "results": {}})
        if "version" not in info and not info.get("error"):
            try:
                from importlib.metadata import version as v

                info["version"] = v({"genesis": "genesis", "openai": "openai", "litellm": "litellm"}[lib])
            except Exception:
                pass

    results["meta"]["seconds"] = time.perf_counter() - t_start
    print()
    print(report(results, spec))
    errors = collect_errors(results)
    print(
        f"\n{len(errors)} error(s); {results['meta']['seconds']:.0f} s in all"
        + (f"; skipped (not installed): {', '.join(skipped)}" if skipped else "")
    )
    for e in errors:
        print("  - " + e)
    if args.json_path:
        path = Path(args.json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2, default=str))
        print(f"results written to {path}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
