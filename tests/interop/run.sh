#!/usr/bin/env bash
# The real-peer interop suite (tests/interop/interop.test.mjs): vncap between
# noVNC in headless Chromium, vncdotool, TigerVNC Xvnc and QEMU's VNC server
# (plain, and VeNCrypt with tls-creds-x509 / tls-creds-anon from a CA made there).
# Builds the binaries, installs what is missing (through tests/setup.sh: apt
# chromium, novnc, qemu-system-x86, tigervnc; pip vncdotool; npm ci here),
# then runs `node --test` in its own process group, bounded in time; every
# process it started is killed on the way out, whatever happens.
#
# Output (reporter.mjs): `PASS <name>` / `FAIL <name>` per test, then
# `N passed, M failed`. A failure keeps the scratch directory (screenshots,
# every process's log; the paths are printed).
#
# Environment: INTEROP_VERBOSE=1 echoes every peer's log; INTEROP_KEEP=1
# keeps the screenshots, captures, recordings and logs (the path is printed);
# INTEROP_FIXTURES=DIR writes the recordings of scenarios 1-4 there as
# fixtures (tests/fixtures/rfb/interop/capture.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

[ "${VNCAP_SKIP_SETUP:-}" = 1 ] || bash tests/setup.sh
cargo build --quiet --locked -p vncap -p vncap-tests --bins

group=""
cleanup() {
  if [ -n "$group" ]; then
    kill -TERM -- "-$group" 2>/dev/null || true
    # Bounded: whatever ignores SIGTERM for 5 s gets SIGKILL.
    for _ in $(seq 50); do
      kill -0 -- "-$group" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$group" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cd "$here"
start=$(date +%s)
# A new session (setsid) puts node, Chromium, Xvnc, QEMU, vncap and testvnc
# in one process group that cleanup() can end as a whole.
setsid timeout --kill-after=10 420 node --test --test-reporter=./reporter.mjs --test-reporter-destination=stdout interop.test.mjs &
group=$!
status=0
wait "$group" || status=$?
echo "interop: node --test exited $status after $(( $(date +%s) - start )) s"
exit "$status"
