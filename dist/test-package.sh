#!/usr/bin/env bash
# The Debian package, as tests/run.sh checks it: built by cargo-deb from the
# release build, installed with dpkg -i (needs root, as CI is), then the
# installed files, `vncap --version`, the conffile, the vncap user, the
# installed binary starting on the installed settings as that user,
# `systemd-analyze verify` on every unit, and `systemd-analyze security`'s
# exposure score of vncap.service. Both systemd-analyze commands work
# offline: systemd need not be PID 1. The package is purged at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

start=$SECONDS
version=$(sed -n 's/^version = "\(.*\)"/\1/p' smol-daemon/Cargo.toml | head -1)
cargo build --release --locked -p vncap --quiet
deb=$(cargo deb -p vncap --no-build --locked --quiet | tail -1)
echo "package: $deb ($(du -k "$deb" | cut -f1) KiB, built in $((SECONDS - start)) s)"

# dpkg may be locked by another install on this machine: wait for it.
for _ in $(seq 120); do
  if out=$(dpkg -i "$deb" 2>&1); then break; fi
  grep -q "lock" <<<"$out" || { echo "$out"; exit 1; }
  sleep 5
done
trap 'dpkg --purge vncap >/dev/null 2>&1 || true' EXIT

fail() { echo "package: $*"; exit 1; }
[ "$(/usr/bin/vncap --version)" = "vncap $version" ] || fail "vncap --version: $(/usr/bin/vncap --version)"
[ "$(vncap -V)" = "vncap $version" ] || fail "vncap -V"
for f in /usr/bin/vncap /etc/vncap/vncap.toml /usr/share/man/man8/vncap.8.gz \
         /usr/lib/systemd/system/vncap.service \
         /usr/lib/systemd/system/vncap-flashpolicy.service \
         /usr/lib/systemd/system/vncap-flashpolicy.socket \
         /usr/share/doc/vncap/examples/vncap.socket \
         /usr/share/doc/vncap/copyright /usr/share/doc/vncap/LICENSE-MIT \
         /usr/share/doc/vncap/LICENSE-APACHE /usr/share/doc/vncap/README.md; do
  dpkg -L vncap | grep -qx "$f" || fail "$f not in the package"
  [ -e "$f" ] || fail "$f not installed"
done
dpkg-query -W -f='${Conffiles}\n' vncap | grep -q '/etc/vncap/vncap.toml' || fail "vncap.toml is not a conffile"
getent passwd vncap >/dev/null || fail "no vncap user"
zcat /usr/share/man/man8/vncap.8.gz | grep -q '^\.TH VNCAP 8' || fail "man page"

# The installed binary, on the installed settings, as the vncap user.
log=$(mktemp)
setpriv --reuid vncap --regid vncap --clear-groups \
  /usr/bin/vncap serve --config /etc/vncap/vncap.toml --control 127.0.0.1:0 \
  --listen 127.0.0.1 --ports 29990-29999 2>"$log" &
pid=$!
for _ in $(seq 100); do grep -q "ready: control on" "$log" && break; sleep 0.1; done
grep -q "settings from /etc/vncap/vncap.toml" "$log" || { cat "$log"; fail "serve on the conffile"; }
kill -TERM $pid; wait $pid || { cat "$log"; fail "serve did not exit 0"; }
rm -f "$log"

units=(/usr/lib/systemd/system/vncap.service
       /usr/lib/systemd/system/vncap-flashpolicy.socket
       /usr/lib/systemd/system/vncap-flashpolicy.service
       /usr/share/doc/vncap/examples/vncap.socket)
out=$(systemd-analyze verify --man=no "${units[@]}" 2>&1) || { echo "$out"; fail "systemd-analyze verify"; }
[ -z "$out" ] || { echo "$out"; fail "systemd-analyze verify warned"; }
echo "package: systemd-analyze verify: ${#units[@]} units clean"
for unit in vncap.service vncap-flashpolicy.service; do
  score=$(systemd-analyze security --offline=true "/usr/lib/systemd/system/$unit" 2>&1 \
    | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
  [ -n "$score" ] || fail "systemd-analyze security $unit gave no score"
  echo "package: systemd-analyze security $unit: exposure $score"
  awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || fail "$unit exposure $score > 2.0"
done
echo "package: all checks passed in $((SECONDS - start)) s"
