#!/usr/bin/env bash
# Benchmarks vncap against a direct connection, a tuned socat relay and
# websockify in one run, and prints markdown tables (medians, spreads, ratios
# against socat) with the machine, its load and the versions, then the
# release binary's size. Speed is measured here, never in tests. Everything
# runs on 127.0.0.1; every process started is killed on exit; every phase is
# bounded (the harness gives up on any step after 30 s). The harness is
# tests/src/bin/vncap-bench.rs; the core's micro-benchmarks are
# `cargo bench -p vncap-tests --bench core` (not run here).
#
#   bench/run.sh            full run, release build (six to ten minutes)
#   bench/run.sh --smoke    one short pass, debug build, no PyPI websockify
#                           (tests/run.sh)
#   bench/run.sh -- ARGS    pass ARGS to vncap-bench (see: vncap-bench --help),
#                           e.g. -- --phases console --console 100,1000
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=0
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=1 ;;
    --) shift; extra+=("$@"); break ;;
    *) extra+=("$1") ;;
  esac
  shift
done

have() { command -v "$1" >/dev/null 2>&1; }
apt_install() {
  local SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "bench: apt-get install $*" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
have socat || apt_install socat

# Sessions are two descriptors each on both sides: raise the limits (root may
# raise the hard one too; otherwise the soft one goes up to the hard one).
ulimit -Hn 65536 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [ "$smoke" -eq 1 ]; then
  cargo build --quiet --locked -p vncap -p vncap-tests --bins
  bin=target/debug
  args=(--reps 1 --mib 4 --pings 20 --setups 16 --sessions 4
        --console 4 --console-secs 1
        --relays direct,socat,vncap,vncap-ws,vncap-wss)
  websockify=""
else
  # websockify 0.13 with numpy from PyPI, in a venv of its own under target/.
  venv=target/bench-venv/websockify
  if [ ! -x "$venv/bin/websockify" ]; then
    python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
    echo "bench: pip install websockify 0.13 and numpy into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q 'websockify==0.13.*' numpy
  fi
  websockify="$venv/bin/websockify"
  # The TLS anchors: nginx in front of websockify, stunnel in front of socat.
  have nginx || apt_install nginx
  have stunnel4 || apt_install stunnel4
  cargo build --quiet --locked --release -p vncap -p vncap-tests --bins
  bin=target/release
  # Larger console loads are their own run (-- --phases console --console
  # N): the harness spends two threads a console, so 10,000 overloads a
  # small shared machine; each run stays under ten minutes.
  # 512 MiB × 3 and 1,000 setups keep the whole run under ten minutes.
  args=(--websockify "$websockify" --hold 10000 --console 100,1000
        --mib 512 --reps 3 --setups 1000)
fi
args+=("${extra[@]+"${extra[@]}"}")

# Kill the harness and whatever it started (relays fork), by process id.
harness=""
kill_tree() {
  local pid=$1 child
  for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do kill_tree "$child"; done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() { if [ -n "$harness" ]; then kill_tree "$harness"; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
out="${TMPDIR:-/tmp}/vncap-bench.$$"
timeout 900 "$bin/vncap-bench" --vncap "$bin/vncap" "${args[@]+"${args[@]}"}" >"$out" &
harness=$!
status=0
wait "$harness" || status=$?
harness=""
table=$(cat "$out")
rm -f "$out"
[ "$status" -eq 0 ] || { echo "bench: vncap-bench failed ($status)" >&2; exit "$status"; }

if [ "$smoke" -eq 1 ]; then
  echo "bench: smoke run passed ($bin/vncap-bench ${args[*]})"
  exit 0
fi

# The size-tuned binary ([profile.small]): with the default features, and
# without TLS (the `tls` feature; before it exists both are the same build).
size() { stat -c %s target/small/vncap; }
cargo build --quiet --locked --profile small -p vncap
with_tls=$(size)
cargo build --quiet --locked --profile small -p vncap --no-default-features
without_tls=$(size)
mib() { awk -v b="$1" 'BEGIN { printf "%.2f MiB (%d bytes)", b / 1048576, b }'; }

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
ver() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo unknown; }
wsver=$("$(dirname "$websockify")/pip" list 2>/dev/null | awk '$1 == "websockify" || $1 == "numpy" { printf "%s %s ", $1, $2 }')
cat <<INFO
## vncap benchmark

- date: $(date -u '+%Y-%m-%d %H:%M UTC')
- machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $(uname -sr), $(free -g | awk '/^Mem:/ { print $2 }') GiB; load average $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end
- vncap: $(git describe --always --dirty 2>/dev/null || echo unknown) ($(rustc --version)), release build
- socat: $(ver socat); websockify: ${wsver:-unknown}(PyPI, $(python3 --version 2>&1)); nginx: $(ver nginx-common); stunnel4: $(ver stunnel4)
- command: bench/run.sh${extra[*]:+ -- ${extra[*]}}

$table

### Binary size

\`cargo build --profile small -p vncap\` (opt-level s, LTO, one codegen unit, panic=abort, stripped): $(mib "$with_tls"); with \`--no-default-features\` (no TLS): $(mib "$without_tls").
INFO
