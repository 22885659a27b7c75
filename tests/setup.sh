#!/usr/bin/env bash
# Installs what tests/run.sh needs on a fresh Debian machine: system packages
# for the real-peer suites and the benchmark (TigerVNC's server and viewer,
# Xvfb, socat, websockify, ...), Rust components. Idempotent:
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
# xsetroot: paints the interop suite's Xvnc root a known solid colour.
have xsetroot || need_apt+=(x11-xserver-utils)
# TigerVNC's viewer under Xvfb (VeNCrypt X509Vnc to vncap); its window is
# screenshotted by Pillow over XCB (xshot.py; Pillow comes with vncdotool).
have xtigervncviewer || need_apt+=(tigervnc-viewer)
have Xvfb     || need_apt+=(xvfb)
# HAProxy (mode tcp, send-proxy-v2) in front of two vncaps (issue 16).
have haproxy  || need_apt+=(haproxy)
have node     || need_apt+=(nodejs)
# openssl: the interop suite's self-signed certificate for wss.
have openssl  || need_apt+=(openssl)
have npm      || need_apt+=(npm)
# systemd-analyze: the package step verifies the units (offline: systemd
# need not run as PID 1).
have systemd-analyze || need_apt+=(systemd)
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)

if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: apt-get install ${need_apt[*]}"
  # Other engineers' installs may hold the dpkg lock: wait for it (10 min).
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# vncdotool: a real, independent VNC viewer (tests/peers.rs logs it in to the
# test backend; tests/fixtures/rfb/capture.py records handshakes with it).
# Debian's python may be "externally managed" (PEP 668).
if ! have vncdo; then
  echo "setup: python3 -m pip install vncdotool"
  python3 -m pip install -q vncdotool 2>/dev/null \
    || python3 -m pip install -q --break-system-packages vncdotool
fi

# websockets: the interop suite's base64-subprotocol viewer (ws_base64.py).
if ! python3 -c 'import websockets' 2>/dev/null; then
  echo "setup: python3 -m pip install websockets"
  python3 -m pip install -q websockets 2>/dev/null \
    || python3 -m pip install -q --break-system-packages websockets
fi

# prometheus_client: its text-format parser checks vncap's /metrics
# (smol-daemon/tests/operations.rs).
if ! python3 -c 'import prometheus_client.parser' 2>/dev/null; then
  echo "setup: python3 -m pip install prometheus_client"
  python3 -m pip install -q prometheus_client 2>/dev/null \
    || python3 -m pip install -q --break-system-packages prometheus_client
fi

# playwright-core (pinned in tests/interop/package-lock.json) drives the
# system Chromium; it never downloads a browser (no `playwright install`).
# @novnc/novnc (pinned there too) is the second noVNC build the suite runs.
interop="$(cd "$(dirname "$0")" && pwd)/interop"
npm_versions() { # pinned|installed: both modules' versions on one line
  for m in playwright-core @novnc/novnc; do
    if [ "$1" = pinned ]; then
      awk -v key="\"node_modules/$m\"" '$1 == key":" {f=1} f && /"version"/ {gsub(/[",]/, "", $2); print $2; exit}' "$interop/package-lock.json"
    else
      sed -n 's/^  "version": "\(.*\)".*/\1/p' "$interop/node_modules/$m/package.json" 2>/dev/null || true
    fi
  done | tr '\n' ' '
}
pinned=$(npm_versions pinned)
installed=$(npm_versions installed)
if [ "$pinned" != "$installed" ]; then
  echo "setup: npm ci in $interop (playwright-core, @novnc/novnc: $pinned)"
  (cd "$interop" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi

rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy

# cargo-deb (pinned): the package step of tests/run.sh (dist/test-package.sh).
CARGO_DEB_VERSION=3.8.0
if [ "$(cargo deb --version 2>/dev/null | awk '{print $NF}')" != "$CARGO_DEB_VERSION" ]; then
  echo "setup: cargo install cargo-deb --version $CARGO_DEB_VERSION --locked"
  cargo install -q cargo-deb --version "$CARGO_DEB_VERSION" --locked
fi
