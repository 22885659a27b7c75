#!/usr/bin/env bash
# Benchmarks vncap against a direct connection, a plain socat relay and
# websockify in one run, and prints markdown tables (medians, spreads, ratios
# against socat) with the machine and the versions. Speed is measured here,
# never in tests. Everything runs on 127.0.0.1; every process started is
# killed on exit. The harness is tests/src/bin/vncap-bench.rs.
#
#   bench/run.sh            full run, release build (about a minute)
#   bench/run.sh --smoke    1 short repetition per relay, debug build (tests/run.sh)
#   bench/run.sh -- ARGS    pass ARGS to vncap-bench (see: vncap-bench --help)
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
need_apt=()
have socat || need_apt+=(socat)
have websockify || need_apt+=(websockify)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "bench: apt-get install ${need_apt[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ "$smoke" -eq 1 ]; then
  cargo build --quiet --locked -p vncap -p vncap-tests --bins
  bin=target/debug
  args=(--reps 1 --mib 4 --pings 20 --sessions 4)
else
  cargo build --quiet --locked --release -p vncap -p vncap-tests --bins
  bin=target/release
  args=()
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

"$bin/vncap-bench" --vncap "$bin/vncap" "${args[@]+"${args[@]}"}" >"${TMPDIR:-/tmp}/vncap-bench.$$" &
harness=$!
status=0
wait "$harness" || status=$?
harness=""
table=$(cat "${TMPDIR:-/tmp}/vncap-bench.$$")
rm -f "${TMPDIR:-/tmp}/vncap-bench.$$"
[ "$status" -eq 0 ] || { echo "bench: vncap-bench failed ($status)" >&2; exit "$status"; }

if [ "$smoke" -eq 1 ]; then
  echo "bench: smoke run passed ($bin/vncap-bench ${args[*]})"
  exit 0
fi

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
ver() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo unknown; }
cat <<INFO
## vncap benchmark

- date: $(date -u '+%Y-%m-%d %H:%M UTC')
- machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $(uname -sr), load average $(cut -d' ' -f1-3 /proc/loadavg) at the end
- vncap: $(git describe --always --dirty 2>/dev/null || echo unknown) ($(rustc --version)), release build
- socat: $(ver socat); websockify: $(ver websockify) ($(python3 --version 2>&1))
- command: bench/run.sh${extra[*]:+ -- ${extra[*]}}

$table
INFO
