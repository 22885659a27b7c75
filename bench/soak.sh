#!/usr/bin/env bash
# The fault soak (issue 15): one vncap holds 1,000 relayed sessions on
# loopback while a chaos driver kills backends, drops and half-closes
# viewers, holds slowloris handshakes and floods the control channel from
# 127.0.0.2, and a probe from 127.0.0.1 logs in every 250 ms. Fails if a
# probe fails or takes over 1 s, or if ports, tickets, sessions,
# descriptors or RSS are not back at the end. Prints a markdown table. The
# driver is tests/src/bin/vncap-soak.rs; the run's figures are in
# bench/RESULTS.md ("Fault soak").
#
#   bench/soak.sh [SECONDS]           release build, SECONDS of chaos (default
#                                     300) after a warm-up of a tenth of it
#                                     (10-30 s); under ten minutes in all
#   bench/soak.sh --debug [SECONDS]   the debug binaries (tests/run.sh: 60)
#   bench/soak.sh SECONDS -- ARGS     pass ARGS to vncap-soak (--sessions N,
#                                     --warmup S)
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
secs=300
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --debug) profile=debug ;;
    --) shift; extra+=("$@"); break ;;
    *) secs=$1 ;;
  esac
  shift
done
case "$secs" in
  ''|*[!0-9]*) echo "soak: SECONDS must be a whole number, not $secs" >&2; exit 2 ;;
esac
if [ "$secs" -gt 500 ]; then
  echo "soak: at most 500 s (the whole run stays under ten minutes)" >&2; exit 2
fi

if [ "$profile" = release ]; then
  cargo build --quiet --locked --release -p vncap -p vncap-tests --bin vncap --bin vncap-soak
else
  cargo build --quiet --locked -p vncap -p vncap-tests --bin vncap --bin vncap-soak
fi
bin=target/$profile

# Sessions are two descriptors each on both sides, plus the chaos: raise the
# limits (root may raise the hard one too; otherwise the soft one goes up to
# the hard one). vncap inherits them.
ulimit -Hn 65536 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" -lt 5000 ]; then
  echo "soak: the open-file limit is $(ulimit -n); 1,000 sessions need about 5,000" >&2
  exit 2
fi

# The driver kills vncap when it ends; if it is itself cut short (the
# timeout, ^C), its process tree is killed here, by process id.
driver=""
kill_tree() {
  local pid=$1 child
  for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do kill_tree "$child"; done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() { if [ -n "$driver" ]; then kill_tree "$driver"; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM

start=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
status=0
# 590 s is the outer bound of the whole run.
timeout 590 "$bin/vncap-soak" --vncap "$bin/vncap" --secs "$secs" \
  "${extra[@]+"${extra[@]}"}" &
driver=$!
wait "$driver" || status=$?
driver=""
cat <<INFO

- $(date -u '+%Y-%m-%d %H:%M UTC'), $profile build of $(git describe --always --dirty 2>/dev/null || echo unknown); $(nproc) CPUs, $(uname -sr); load average $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end; $(( $(date +%s) - start )) s in all
INFO
[ "$status" -eq 0 ] || { echo "soak: vncap-soak failed ($status)" >&2; exit "$status"; }
