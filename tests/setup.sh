#!/usr/bin/env bash
# Installs what tests/run.sh needs on a fresh Debian machine: system packages
# for the real-peer suites and the benchmark (TigerVNC, socat, websockify, ...), Rust components. Idempotent:
# whatever is already there is left alone. Needs root (or sudo) for apt-get.
set -euo pipefail

need_apt=()
have() { command -v "$1" >/dev/null 2>&1; }
have Xvnc     || need_apt+=(tigervnc-standalone-server tigervnc-tools)
have socat    || need_apt+=(socat)
# websockify: the reference relay bench/run.sh compares vncap with.
have websockify || need_apt+=(websockify)
have python3  || need_apt+=(python3)
# The real-peer interop suite (tests/interop/run.sh): noVNC in Debian's
# headless Chromium, QEMU's VNC server, node for the test runner.
have chromium || need_apt+=(chromium)
[ -f /usr/share/novnc/vnc.html ] || need_apt+=(novnc)
have qemu-system-x86_64 || need_apt+=(qemu-system-x86)
have node     || need_apt+=(nodejs)
# openssl: the interop suite's self-signed certificate for wss.
have openssl  || need_apt+=(openssl)
have npm      || need_apt+=(npm)
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)

if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# vncdotool: a real, independent VNC viewer (tests/peers.rs logs it in to the
# test backend; tests/fixtures/rfb/capture.py records handshakes with it).
# Debian's python may be "externally managed" (PEP 668).
if ! have vncdo; then
  echo "setup: python3 -m pip install vncdotool"
  python3 -m pip install -q vncdotool 2>/dev/null \
    || python3 -m pip install -q --break-system-packages vncdotool
fi

# playwright-core (pinned in tests/interop/package-lock.json) drives the
# system Chromium; it never downloads a browser (no `playwright install`).
interop="$(cd "$(dirname "$0")" && pwd)/interop"
pinned=$(sed -n '/"node_modules\/playwright-core"/,/}/s/.*"version": "\(.*\)".*/\1/p' "$interop/package-lock.json")
installed=$(sed -n 's/^  "version": "\(.*\)".*/\1/p' "$interop/node_modules/playwright-core/package.json" 2>/dev/null || true)
if [ "$pinned" != "$installed" ]; then
  echo "setup: npm ci in $interop (playwright-core $pinned)"
  (cd "$interop" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi

rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
