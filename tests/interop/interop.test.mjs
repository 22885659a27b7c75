// The real-peer interop suite: vncap between third-party peers as users run
// them. Viewers: noVNC in headless Chromium driven by playwright-core, in two
// builds (Debian's `novnc` 1.3 with its vnc.html, npm's `@novnc/novnc` with
// novnc-page.html around its core/rfb.js), over ws and wss; vncdotool (a
// native RFB viewer); TigerVNC's viewer under Xvfb, through VeNCrypt X509Vnc
// to vncap (its window screenshotted); a Python `websockets` viewer offering
// only the `base64` subprotocol (as GWM's noVNC 0.4 does). Backends: the
// project's testvnc (colour bars), TigerVNC's Xvnc with `-SecurityTypes None`
// and a known solid root colour, Xvnc with VNC authentication (the cluster
// password from `--backend-password-file`), QEMU's VNC server with and
// without a password, and with VeNCrypt (`tls-creds-x509` from a CA made here, with and without
// `verify-peer`; `tls-creds-anon`) reached with `--backend-tls-dir`.
// Consoles are requested through vapclient.py (GWM's vapclient, byte for
// byte) or as raw snf-dialect JSON, or with `vncap request --single-port`
// (signed tickets across two vncaps); noVNC also loads its page from vncap's
// own single port (`--web-root`, issue 16). Plus a measurement of when real viewers
// first speak after the TCP accept (the sniff's silence is 300 ms).
//
// The test names carry the issue's scenario numbers (1-9). Each test is one
// console as a user would open it; not a load test. Run by run.sh (`node
// --test`, reporter.mjs: PASS/FAIL lines and `N passed, M failed`). A failed
// test screenshots its open pages and X displays; a failed run keeps the
// scratch directory with every process's log and prints the paths.
//
// vncap runs with `--record`; INTEROP_FIXTURES=DIR copies the recordings of
// scenarios 1-4 there, trimmed, as fixtures (tests/fixtures/rfb/interop/).
//
// DESIGN.md: "Entry points", "Sessions", "The control channel".

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { chromium } from 'playwright-core';
import {
  HERE, NOVNC, NOVNC_BUILDS, PATIENCE_MS, Proc, SCRATCH, Vncap, connectOutcome, dumpLogs, freePort, killAll,
  noVncUrl, pngStat, randomPassword, rfbChooseType, selfSignedCert, serveNoVnc, startChromium, startQemu,
  startTap, startTestvnc, startTigerViewer, startXvfb, startXvnc, summary, vncdoCapture, vncdoFails,
  waitScreen, within, x509Pki, xshot, VNCAP, privatePortBlock, startHaproxy,
} from './lib.mjs';

/** Ganeti's cluster VNC password: every backend that asks for one gets this. */
const CLUSTER = 'Cl8sterPw';
/** vncap's sniff silence timeout (core/src/sniff.rs SILENCE_TIMEOUT_MS). */
const SILENCE_MS = 300;
/** The known picture: Xvnc's root painted by `xsetroot -solid`. */
const SOLID = '#3a7bd5';
const SOLID_RGB = [0x3a, 0x7b, 0xd5];
/** vncap's --connect-timeout here (seconds), and its retries. */
const CONNECT_TIMEOUT_S = 2;
/** The reason vncap's RFB server gives a wrong password (core/src/rfb/server.rs). */
const AUTH_REASON = 'Authentication failure';

let vncap;
/** A second vncap with --cert/--key (wss; VeNCrypt for native viewers), and its certificate's files. */
let vncapTls;
let tlsCert;
let testvnc;
let xvncNone;
let xvncAuth;
let qemuOpen;
let qemuLocked;
/** One static HTTP server per noVNC build: `web.debian`, `web.npm`. */
const web = {};
let browser;
let chromiumHandle;
const taps = [];
const measurements = {};
/** Scenario recordings to keep as fixtures: name → {port, pw} (entry port, ticket password). */
const recordings = {};
const RECORD_DIR = path.join(SCRATCH, 'record');
let failures = 0;

before(async () => {
  fs.mkdirSync(RECORD_DIR, { mode: 0o700 });
  [web.debian, web.npm] = await Promise.all([serveNoVnc(NOVNC_BUILDS.debian), serveNoVnc(NOVNC_BUILDS.npm)]);
  tlsCert = selfSignedCert();
  const common = ['--connect-timeout', String(CONNECT_TIMEOUT_S), '--connect-retries', '1'];
  [vncap, vncapTls, testvnc, xvncNone, xvncAuth, qemuOpen, qemuLocked] = await Promise.all([
    Vncap.start({ backendPassword: CLUSTER, extra: [...common, '--record', RECORD_DIR] }),
    Vncap.start({ backendPassword: CLUSTER, extra: [...common, '--cert', tlsCert.cert, '--key', tlsCert.key] }),
    startTestvnc({ password: CLUSTER }),
    startXvnc({ solid: SOLID }),
    startXvnc({ password: CLUSTER }),
    startQemu(),
    startQemu({ password: CLUSTER }),
  ]);
  chromiumHandle = await startChromium(chromium);
  browser = chromiumHandle.context;
  process.stdout.write(`# noVNC builds: Debian ${NOVNC_BUILDS.debian.version}, npm @novnc/novnc ${NOVNC_BUILDS.npm.version}\n`);
});

after(async () => {
  if (chromiumHandle) await chromiumHandle.close();
  for (const w of Object.values(web)) w.close();
  for (const t of taps) t.close();
  await killAll();
  if (Object.keys(measurements).length) {
    const file = path.join(SCRATCH, 'measurements.json');
    fs.writeFileSync(file, JSON.stringify(measurements, null, 2));
    process.stdout.write(`# first-byte measurements (ms after TCP accept): ${JSON.stringify(measurements)}\n`);
  }
  if (process.env.INTEROP_FIXTURES) keepFixtures(process.env.INTEROP_FIXTURES);
  if (failures > 0) {
    const logs = dumpLogs();
    process.stdout.write(`# ${failures} test(s) failed; kept ${SCRATCH}\n# logs:\n${logs.map((l) => `#   ${l}\n`).join('')}`);
  } else if (process.env.INTEROP_KEEP) {
    dumpLogs();
    process.stdout.write(`# kept screenshots, captures, recordings and logs in ${SCRATCH}\n`);
  } else {
    fs.rmSync(SCRATCH, { recursive: true, force: true, maxRetries: 5 });
  }
});

// ---------------------------------------------------------------- scenario wrapper

/**
 * A test whose open pages and X displays are screenshotted when it fails
 * (paths added to the error), and whose failure keeps the run's scratch
 * directory and logs. `fn` gets `open(build, port, password, opts)`, which
 * opens noVNC, and `xvfb()`, which starts an Xvfb for a native viewer (stopped
 * when the test ends).
 */
function scenario(name, fn) {
  test(name, async (t) => {
    const pages = [];
    const displays = [];
    const xvfb = async () => {
      const x = await startXvfb();
      displays.push(x);
      return x;
    };
    const open = async (build, entryPort, password, opts) => {
      const page = await browser.newPage();
      pages.push(page);
      await page.setViewportSize({ width: 800, height: 600 });
      page.on('pageerror', (e) => process.stderr.write(`  page error: ${e}\n`));
      page.on('console', (m) => { if (m.type() === 'error') process.stderr.write(`  page console: ${m.text()}\n`); });
      await page.goto(noVncUrl(web[build], entryPort, password, opts), { timeout: PATIENCE_MS });
      return page;
    };
    try {
      await fn({ open, xvfb, t });
    } catch (e) {
      failures++;
      const shots = [];
      for (const [i, page] of pages.entries()) {
        if (page.isClosed()) continue;
        const file = path.join(SCRATCH, `FAILED-${name.replace(/[^A-Za-z0-9]+/g, '_').slice(0, 60)}-${i}.png`);
        try {
          await page.screenshot({ path: file, timeout: 5000 });
          shots.push(file);
        } catch { /* the page is gone */ }
      }
      for (const [i, x] of displays.entries()) {
        if (x.exited) continue;
        const file = path.join(SCRATCH, `FAILED-${name.replace(/[^A-Za-z0-9]+/g, '_').slice(0, 60)}-x${i}.png`);
        try {
          shots.push(await xshot(x.display, file));
        } catch { /* the display is gone */ }
      }
      e.message += `\n  screenshots: ${shots.join(', ') || 'none'}\n  scratch (kept): ${SCRATCH}\n  vncap log (last lines):\n${vncap?.tail(15) ?? ''}`;
      throw e;
    } finally {
      for (const page of pages) await page.close().catch(() => {});
      for (const x of displays) await x.stop();
    }
  });
}

// ---------------------------------------------------------------- noVNC helpers

/**
 * Waits until noVNC says connected or shows an error status; resolves with
 * `{state: 'connected' | 'error', status}` (the status bar's text; both
 * builds use noVNC 1.3's UI wording, see novnc-page.html).
 */
async function outcome(page) {
  const handle = await page.waitForFunction(() => {
    const status = document.getElementById('noVNC_status');
    if (document.documentElement.classList.contains('noVNC_connected')) {
      return { state: 'connected', status: status.textContent };
    }
    if (status.classList.contains('noVNC_status_error')) {
      return { state: 'error', status: status.textContent };
    }
    return null;
  }, null, { timeout: PATIENCE_MS, polling: 'raf' });
  return handle.jsonValue();
}

/** The canvas's size and the RGB at each [x, y] of `points`. */
function canvasPixels(page, points) {
  return page.evaluate((pts) => {
    const c = document.querySelector('#noVNC_container canvas');
    if (!c) return null;
    const ctx = c.getContext('2d');
    return {
      width: c.width,
      height: c.height,
      points: pts.map(([x, y]) => Array.from(ctx.getImageData(x, y, 1, 1).data.slice(0, 3))),
    };
  }, points);
}

/** Counts of each RGB colour in the whole canvas (for patterns, not single pixels). */
function canvasHistogram(page) {
  return page.evaluate(() => {
    const c = document.querySelector('#noVNC_container canvas');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const h = {};
    for (let i = 0; i < d.length; i += 4) {
      const k = `${d[i]},${d[i + 1]},${d[i + 2]}`;
      h[k] = (h[k] || 0) + 1;
    }
    return h;
  });
}

/**
 * Waits (on animation frames, bounded) until the canvas is `width`x`height`
 * and shows what `check` asks: 'points' (each point within 2 of `want[i]`),
 * 'present' (at least want.count pixels of want.rgb) or 'solid' (every pixel
 * exactly want.rgb); fails with what the canvas last showed.
 */
async function waitCanvas(page, { width, height, points = [], check = 'points', want }) {
  try {
    await page.waitForFunction(({ width, height, points, check, want }) => {
      const c = document.querySelector('#noVNC_container canvas');
      if (!c || c.width !== width || c.height !== height) return false;
      const ctx = c.getContext('2d');
      if (check === 'points') {
        return points.every(([x, y], i) => {
          const p = ctx.getImageData(x, y, 1, 1).data;
          return Math.abs(p[0] - want[i][0]) <= 2 && Math.abs(p[1] - want[i][1]) <= 2 && Math.abs(p[2] - want[i][2]) <= 2;
        });
      }
      const d = ctx.getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) {
        if (d[i] === want.rgb[0] && d[i + 1] === want.rgb[1] && d[i + 2] === want.rgb[2]) n++;
      }
      return check === 'solid' ? n === c.width * c.height : n >= want.count;
    }, { width, height, points, check, want }, { timeout: PATIENCE_MS, polling: 'raf' });
  } catch (e) {
    const seen = await canvasPixels(page, points.length ? points : [[0, 0], [width >> 1, height >> 1]]).catch(() => null);
    throw new Error(`canvas never showed the backend's picture: ${e.message}\nlast seen: ${JSON.stringify(seen)}`);
  }
}

/** Screenshot into the scratch directory (kept with INTEROP_KEEP=1). */
async function shot(page, name) {
  const file = path.join(SCRATCH, `${name}.png`);
  await page.screenshot({ path: file, timeout: PATIENCE_MS });
  return file;
}

/** The colour bars of testvnc (tests/src/peer.rs test_pattern_rgb) on 640x480. */
function colourBars() {
  const bars = [[255, 255, 255], [255, 255, 0], [0, 255, 255], [0, 255, 0], [255, 0, 255], [255, 0, 0], [0, 0, 255], [0, 0, 0]];
  const points = [];
  const want = [];
  bars.forEach((rgb, i) => { points.push([i * 80 + 40, 100]); want.push(rgb); });
  for (const x of [0, 320, 639]) { // the grey ramp below the bars
    const g = Math.min(255, Math.floor((x * 255) / 639));
    points.push([x, 450]);
    want.push([g, g, g]);
  }
  return { points, want };
}

/** X's root weave is white in about a quarter of its pixels (19216 of 320x240). */
function assertWeave(white, total) {
  assert.ok(white > total * 0.24 && white < total * 0.26, `weave: ${white} of ${total} pixels white`);
}

/** The reason in a noVNC 1.3-worded rejection status. */
function rejectionReason(status) {
  const m = /^New connection has been rejected with reason: (.*)$/.exec(status);
  assert.ok(m, `not a rejection: ${JSON.stringify(status)}`);
  return m[1];
}

/**
 * ws_base64.py as a viewer from the source address `from` (a `ws://` URL:
 * WebSocket, a `tcp://` one: native): its exit, its output and the
 * ServerInit it printed (null if none).
 */
async function realViewer(url, pw, from) {
  const p = new Proc('ws_base64', 'python3', [path.join(HERE, 'ws_base64.py'), url, pw, from],
    { env: { ...process.env, PYTHONWARNINGS: 'ignore' } });
  const exit = await within(PATIENCE_MS, `ws_base64.py from ${from}`, p.exitPromise);
  const line = p.lines.find((l) => l.line.startsWith('{'));
  return { exit, output: p.lines.map((l) => l.line).join('\n'), init: line ? JSON.parse(line.line) : null };
}

// ---------------------------------------------------------------- noVNC

describe('noVNC in Chromium through vncap', () => {
  for (const build of ['debian', 'npm']) {
    scenario(`1 noVNC (${build}) → vncap (ws) → Xvnc -SecurityTypes None: the canvas is the solid root colour`, async ({ open }) => {
      const pw = randomPassword();
      const t0 = performance.now();
      const port = await vncap.gwmRequest({ port: xvncNone.port, password: pw, ws: true });
      if (build === 'debian') recordings['novnc-xvnc-none'] = { port, pw };
      const page = await open(build, port, pw);
      const got = await outcome(page);
      assert.equal(got.state, 'connected', `noVNC ${build}: ${got.status}`);
      assert.match(got.status, new RegExp(`^Connected \\(unencrypted\\) to vncap-interop-${xvncNone.display}`));
      const { width, height } = xvncNone.geometry;
      await waitCanvas(page, { width, height, check: 'solid', want: { rgb: SOLID_RGB } });
      await shot(page, `novnc-${build}-xvnc-none`);
      await page.close();
      await vncap.waitLine(new RegExp(`on port ${port}: session ended by the viewer`), PATIENCE_MS, t0);
    });
  }

  scenario('2 noVNC (debian) → vncap → Xvnc VncAuth with the cluster password: its root weave on the canvas', async ({ open }) => {
    const pw = randomPassword();
    const t0 = performance.now();
    const port = await vncap.gwmRequest({ port: xvncAuth.port, password: pw, ws: true });
    recordings['novnc-xvnc-vncauth'] = { port, pw };
    const page = await open('debian', port, pw);
    const got = await outcome(page);
    assert.equal(got.state, 'connected', `noVNC: ${got.status}`);
    assert.match(got.status, new RegExp(`to vncap-interop-${xvncAuth.display}`));
    const { width, height } = xvncAuth.geometry;
    await waitCanvas(page, { width, height, check: 'present', want: { rgb: [255, 255, 255], count: (width * height) / 8 } });
    const h = await canvasHistogram(page);
    // X's classic root weave (-retro): about a quarter white, the rest black.
    assert.deepEqual(Object.keys(h).sort(), ['0,0,0', '255,255,255'], `colours ${JSON.stringify(h)}`);
    assertWeave(h['255,255,255'], width * height);
    await shot(page, 'novnc-xvnc-vncauth');
    await page.close();
    await vncap.waitLine(new RegExp(`on port ${port}: session ended by the viewer`), PATIENCE_MS, t0);
  });

  scenario('3 noVNC (debian) → vncap → QEMU VNC without a password: its "no graphic display" text on the canvas', async ({ open }) => {
    const pw = randomPassword();
    const t0 = performance.now();
    const port = await vncap.gwmRequest({ port: qemuOpen.port, password: pw, ws: true });
    recordings['novnc-qemu'] = { port, pw };
    const page = await open('debian', port, pw);
    const got = await outcome(page);
    assert.equal(got.state, 'connected', `noVNC: ${got.status}`);
    assert.match(got.status, /to QEMU/);
    await waitCanvas(page, { width: 640, height: 480, check: 'present', want: { rgb: [170, 170, 170], count: 500 } });
    await shot(page, 'novnc-qemu');
    await page.close();
    await vncap.waitLine(new RegExp(`on port ${port}: session ended by the viewer`), PATIENCE_MS, t0);
  });

  scenario('3 noVNC (npm) → vncap → QEMU VNC with a password (the cluster password): its text on the canvas', async ({ open }) => {
    const pw = randomPassword();
    const t0 = performance.now();
    const port = await vncap.gwmRequest({ port: qemuLocked.port, password: pw, ws: true });
    const page = await open('npm', port, pw);
    const got = await outcome(page);
    assert.equal(got.state, 'connected', `noVNC: ${got.status}`);
    assert.match(got.status, /to QEMU/);
    await waitCanvas(page, { width: 640, height: 480, check: 'present', want: { rgb: [170, 170, 170], count: 500 } });
    await shot(page, 'novnc-npm-qemu-password');
    await page.close();
    await vncap.waitLine(new RegExp(`on port ${port}: session ended by the viewer`), PATIENCE_MS, t0);
  });

  for (const build of ['debian', 'npm']) {
    scenario(`5 noVNC (${build}) with a wrong password: rejected with vncap's reason, that address blocked, the console kept for the real viewer at 127.0.0.2`, async ({ open }) => {
      const pw = randomPassword();
      const t0 = performance.now();
      const port = await vncap.gwmRequest({ port: qemuLocked.port, password: pw, ws: true });
      const page = await open(build, port, `${pw.slice(0, 7)}!`);
      const got = await outcome(page);
      assert.equal(got.state, 'error', `noVNC ${build}: ${got.status}`);
      assert.equal(rejectionReason(got.status), AUTH_REASON);
      await vncap.waitLine(new RegExp(`on port ${port}: wrong password; this address may not try again \\(the console stays\\)`), PATIENCE_MS, t0);
      assert.ok(!vncap.lines.some((l) => l.at >= t0 && l.line.includes(`backend 127.0.0.1:${qemuLocked.port}`)), 'vncap reached the backend for a wrong password');
      // The same address is refused from now on, even with the password...
      const again = await realViewer(`ws://127.0.0.1:${port}/websockify`, pw, '127.0.0.1');
      assert.notEqual(again.exit.code, 0, again.output);
      assert.match(again.output, /too many wrong passwords from this address/);
      // ...and the real viewer, from another address, has its console.
      const real = await realViewer(`ws://127.0.0.1:${port}/websockify`, pw, '127.0.0.2');
      assert.equal(real.exit.code, 0, real.output);
      assert.match(real.init.name, /QEMU/);
      await vncap.waitLine(new RegExp(`127\\.0\\.0\\.2:\\d+ on port ${port}: session ended by the viewer`), PATIENCE_MS, t0);
    });
  }

  scenario(`6 backend down (a closed port): noVNC shows vncap's reason within the connect timeout (${CONNECT_TIMEOUT_S} s)`, async ({ open }) => {
    const dead = await freePort(); // nobody listens there
    const pw = randomPassword();
    const t0 = performance.now();
    const port = await vncap.gwmRequest({ port: dead, password: pw, ws: true });
    const page = await open('debian', port, pw);
    const got = await outcome(page);
    assert.equal(got.state, 'error', `noVNC: ${got.status}`);
    // One reason for every unreachable backend (no scan oracle); the log
    // keeps the detail.
    assert.equal(rejectionReason(got.status), 'backend unreachable');
    // vncap's own time from the viewer's authentication to the refusal (a
    // closed port refuses at once; the page load is not vncap's).
    const asked = await vncap.waitLine(new RegExp(`authenticated; connecting to backend 127\\.0\\.0\\.1:${dead}$`), PATIENCE_MS, t0);
    const refused = await vncap.waitLine(new RegExp(`backend unreachable: .*refused.* \\(127\\.0\\.0\\.1:${dead}\\)`, 'i'), PATIENCE_MS, t0);
    const elapsed = refused.at - asked.at;
    assert.ok(elapsed < CONNECT_TIMEOUT_S * 1000, `the refusal took ${Math.round(elapsed)} ms`);
  });

  scenario('7 reuse: a second browser on a used ticket is refused (testvnc, colour bars), the first session untouched', async ({ open }) => {
    const pw = randomPassword();
    const t0 = performance.now();
    const port = await vncap.gwmRequest({ port: testvnc.port, password: pw, ws: true });
    const page = await open('debian', port, pw);
    const got = await outcome(page);
    assert.equal(got.state, 'connected', `noVNC: ${got.status}`);
    assert.match(got.status, /^Connected \(unencrypted\) to vncap test backend/);
    const { points, want } = colourBars();
    await waitCanvas(page, { width: 640, height: 480, points, want });
    const png = pngStat(await shot(page, 'novnc-testvnc'));
    assert.ok(png.width >= 640 && png.height >= 480, `screenshot ${png.width}x${png.height}`);

    // One-time: the entry port closed once the first viewer got in.
    await vncap.waitLine(new RegExp(`entry port ${port} closed`), PATIENCE_MS, t0);
    assert.equal(await connectOutcome(port), 'refused', `entry port ${port} still accepts after use`);
    const second = await open('debian', port, pw);
    const refused = await outcome(second);
    assert.equal(refused.state, 'error');
    assert.match(refused.status, /Failed to connect to server/);
    await second.close();

    assert.ok(await page.evaluate(() => document.documentElement.classList.contains('noVNC_connected')));
    await page.close();
    await vncap.waitLine(new RegExp(`on port ${port}: session ended by the viewer`), PATIENCE_MS, t0);
  });

  scenario('8 snf dialect: raw JSON on the control socket (vncap makes the password), then noVNC (npm) → Xvnc None', async ({ open }) => {
    const t0 = performance.now();
    const reply = await vncap.controlRaw(`${JSON.stringify({
      source_port: 0, destination_address: '127.0.0.1', destination_port: xvncNone.port, type: 'vnc-ws',
    })}\n`);
    const r = JSON.parse(reply);
    assert.equal(r.status, 'OK', reply);
    assert.ok(Number.isInteger(r.source_port) && r.source_port > 0, reply);
    assert.match(r.password, /^\S{8,}$/, reply);
    assert.ok(r.expires_in > 0, reply);
    const page = await open('npm', r.source_port, r.password);
    const got = await outcome(page);
    assert.equal(got.state, 'connected', `noVNC: ${got.status}`);
    const { width, height } = xvncNone.geometry;
    await waitCanvas(page, { width, height, check: 'solid', want: { rgb: SOLID_RGB } });
    await page.close();
    await vncap.waitLine(new RegExp(`on port ${r.source_port}: session ended by the viewer`), PATIENCE_MS, t0);
  });

  scenario('wss (vncap --cert, noVNC encrypt=1, "tls": true): connected (encrypted), the colour bars on the canvas', async ({ open }) => {
    const pw = randomPassword();
    const t0 = performance.now();
    const port = await vncapTls.gwmRequest({ port: testvnc.port, password: pw, ws: true, tls: true });
    const page = await open('debian', port, pw, { encrypt: true });
    const got = await outcome(page);
    assert.equal(got.state, 'connected', `noVNC: ${got.status}`);
    assert.match(got.status, /^Connected \(encrypted\) to vncap test backend/);
    const { points, want } = colourBars();
    await waitCanvas(page, { width: 640, height: 480, points, want });
    await shot(page, 'novnc-wss');
    await page.close();
    await vncapTls.waitLine(new RegExp(`on port ${port} \\(TLS\\): session ended by the viewer`), PATIENCE_MS, t0);
  });
});

// ---------------------------------------------------------------- one origin

/**
 * A web root for npm's noVNC (which ships no page): its core/ and vendor/
 * copied, with novnc-page.html beside them, in the scratch directory.
 */
function npmWebRoot() {
  const dir = fs.mkdtempSync(path.join(SCRATCH, 'web-root-npm-'));
  for (const sub of ['core', 'vendor']) {
    fs.cpSync(path.join(NOVNC_BUILDS.npm.root, sub), path.join(dir, sub), { recursive: true, dereference: true });
  }
  fs.copyFileSync(path.join(HERE, 'novnc-page.html'), path.join(dir, 'novnc-page.html'));
  return dir;
}

describe('noVNC from vncap --web-root: the page and its console through one port (issue 16)', () => {
  for (const build of ['debian', 'npm']) {
    scenario(`noVNC (${build}) loads its page from --web-root on the single port and opens a console through the same origin → testvnc: the colour bars`, async () => {
      const root = build === 'debian' ? NOVNC : npmWebRoot();
      const d = await Vncap.start({ backendPassword: CLUSTER, extra: ['--single-port', '0', '--web-root', root] });
      const { line } = await d.waitLine(/ready: control on .*single port \d+/);
      const single = Number(/single port (\d+)/.exec(line)[1]);
      const reply = JSON.parse(await d.controlRaw(`${JSON.stringify({
        source_port: 0, destination_address: '127.0.0.1', destination_port: testvnc.port, type: 'vnc-ws',
      })}\n`));
      assert.equal(reply.status, 'OK', JSON.stringify(reply));
      assert.equal(reply.source_port, single);
      const origin = `http://127.0.0.1:${single}`;
      // Debian's vnc.html takes host and port from the page's own location
      // when the URL leaves them out; the npm page is told them.
      const q = new URLSearchParams({ path: reply.url_path, password: reply.password, autoconnect: '1', logging: 'warn' });
      if (build === 'npm') {
        q.set('host', '127.0.0.1');
        q.set('port', String(single));
      }
      const page = await browser.newPage();
      try {
        const requests = [];
        const failed = [];
        const sockets = [];
        page.on('request', (r) => requests.push(r.url()));
        page.on('response', (r) => { if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`); });
        page.on('websocket', (ws) => sockets.push(ws.url()));
        page.on('pageerror', (e) => process.stderr.write(`  page error: ${e}\n`));
        await page.setViewportSize({ width: 800, height: 600 });
        const t0 = performance.now();
        const nav = await page.goto(`${origin}/${NOVNC_BUILDS[build].page}?${q}`, { timeout: PATIENCE_MS });
        assert.equal(nav.status(), 200);
        assert.match(nav.headers()['content-type'], /^text\/html/);
        assert.equal(nav.headers()['x-content-type-options'], 'nosniff');
        const got = await outcome(page);
        assert.equal(got.state, 'connected', `noVNC ${build}: ${got.status}; failed requests: ${failed.join(', ')}`);
        const connectedMs = Math.round(performance.now() - t0);
        assert.match(got.status, /^Connected \(unencrypted\) to vncap test backend/);
        const { points, want } = colourBars();
        await waitCanvas(page, { width: 640, height: 480, points, want });
        await shot(page, `novnc-${build}-web-root`);
        // Every file and the console came from the one origin.
        assert.ok(requests.length > 3, requests.join('\n'));
        assert.deepEqual(requests.filter((u) => !u.startsWith(`${origin}/`)), []);
        assert.deepEqual(sockets, [`ws://127.0.0.1:${single}/${reply.url_path}`]);
        // The scripts and styles arrived (a wrong type would be refused under nosniff).
        assert.deepEqual(failed.filter((f) => /\.(js|css|html)$/.test(f)), [], failed.join(', '));
        process.stdout.write(`# noVNC (${build}) from --web-root: ${requests.length} requests (${failed.length} not found: ${failed.join(', ') || 'none'}), connected after ${connectedMs} ms\n`);
        await page.close();
        await d.waitLine(/on single port \d+: session ended by the viewer/, PATIENCE_MS, t0);
      } finally {
        if (!page.isClosed()) await page.close();
        await d.stop();
      }
    });
  }
});

// ---------------------------------------------------------------- other viewers

describe('native and base64 viewers through vncap', () => {
  scenario('4 vncdotool → vncap (plain RFB) → Xvnc None: the capture is the solid root colour', async () => {
    const pw = randomPassword();
    const t0 = performance.now();
    const port = await vncap.gwmRequest({ port: xvncNone.port, password: pw, ws: false });
    recordings['vncdo-xvnc-none'] = { port, pw };
    const png = await vncdoCapture(port, pw, 'vncdo-xvnc-none');
    const { width, height } = xvncNone.geometry;
    assert.equal(`${png.width}x${png.height}`, `${width}x${height}`);
    assert.deepEqual(png.colors, [[width * height, SOLID_RGB]], JSON.stringify(png.colors));
    await vncap.waitLine(new RegExp(`on port ${port}: session ended by the viewer`), PATIENCE_MS, t0);
  });

  scenario('4 vncdotool → vncap → Xvnc VncAuth: the capture is its root weave', async () => {
    const pw = randomPassword();
    const t0 = performance.now();
    const port = await vncap.gwmRequest({ port: xvncAuth.port, password: pw, ws: false });
    const png = await vncdoCapture(port, pw, 'vncdo-xvnc');
    const { width, height } = xvncAuth.geometry;
    assert.equal(`${png.width}x${png.height}`, `${width}x${height}`);
    assert.deepEqual(png.colors.map(([, rgb]) => rgb.join()), ['0,0,0', '255,255,255'], JSON.stringify(png.colors));
    assertWeave(png.colors[1][0], width * height);
    await vncap.waitLine(new RegExp(`on port ${port}: session ended by the viewer`), PATIENCE_MS, t0);
  });

  scenario('vncdotool → QEMU with a password (the cluster password): the capture shows its text', async () => {
    const pw = randomPassword();
    const t0 = performance.now();
    const port = await vncap.gwmRequest({ port: qemuLocked.port, password: pw, ws: false });
    const png = await vncdoCapture(port, pw, 'vncdo-qemu-password');
    assert.equal(`${png.width}x${png.height}`, '640x480');
    const grey = png.colors.find(([, rgb]) => rgb.join() === '170,170,170');
    assert.ok(grey && grey[0] > 500, `no grey text in ${JSON.stringify(png.colors)}`);
    await vncap.waitLine(new RegExp(`on port ${port}: session ended by the viewer`), PATIENCE_MS, t0);
  });

  scenario('vncdotool → QEMU without a password: the capture shows its text', async () => {
    const pw = randomPassword();
    const port = await vncap.gwmRequest({ port: qemuOpen.port, password: pw, ws: false });
    const png = await vncdoCapture(port, pw, 'vncdo-qemu-open');
    assert.equal(`${png.width}x${png.height}`, '640x480');
    assert.ok(png.colors.some(([n, rgb]) => rgb.join() === '170,170,170' && n > 500), JSON.stringify(png.colors));
  });

  scenario('vncdotool → testvnc: the capture is the colour bars', async () => {
    const pw = randomPassword();
    const port = await vncap.gwmRequest({ port: testvnc.port, password: pw, ws: false });
    const png = await vncdoCapture(port, pw, 'vncdo-testvnc');
    const { points, want } = colourBars();
    assert.deepEqual(pngStat(png.png, points).points, want);
  });

  scenario('5 vncdotool with a wrong password: it fails, that address is blocked, a native viewer at 127.0.0.2 still logs in', async () => {
    const pw = randomPassword();
    const t0 = performance.now();
    const port = await vncap.gwmRequest({ port: xvncAuth.port, password: pw, ws: false });
    const r = await vncdoFails(port, 'not-it!!');
    assert.notEqual(r.exit.code, 0, `vncdo succeeded: ${r.output}`);
    await vncap.waitLine(new RegExp(`on port ${port}: wrong password; this address may not try again`), PATIENCE_MS, t0);
    const real = await realViewer(`tcp://127.0.0.1:${port}`, pw, '127.0.0.2');
    assert.equal(real.exit.code, 0, real.output);
    assert.equal(real.init.name, `vncap-interop-${xvncAuth.display}`);
    await vncap.waitLine(new RegExp(`entry port ${port} closed`), PATIENCE_MS, t0);
    assert.equal(await connectOutcome(port), 'refused');
  });

  scenario('7 expiry: a ticket never used is gone after its timeout (1 s)', async () => {
    const pw = randomPassword();
    const t0 = performance.now();
    const port = await vncap.gwmRequest({ port: testvnc.port, password: pw, ws: false, timeout: 1 });
    const { at } = await vncap.waitLine(new RegExp(`entry port ${port} closed`), PATIENCE_MS, t0);
    assert.ok(at - t0 >= 900, `closed after ${Math.round(at - t0)} ms, before its timeout`);
    assert.ok(at - t0 < 5000, `closed only after ${Math.round(at - t0)} ms`);
    assert.equal(await connectOutcome(port), 'refused', `entry port ${port} open after expiry`);
  });

  scenario('9 a base64-subprotocol WebSocket viewer (Python websockets, like noVNC 0.4) logs in and gets Xvnc\'s ServerInit', async () => {
    const pw = randomPassword();
    const t0 = performance.now();
    const port = await vncap.gwmRequest({ port: xvncAuth.port, password: pw, ws: true });
    const p = new Proc('ws_base64', 'python3', [path.join(HERE, 'ws_base64.py'), `ws://127.0.0.1:${port}/websockify`, pw],
      { env: { ...process.env, PYTHONWARNINGS: 'ignore' } });
    const exit = await within(PATIENCE_MS, 'ws_base64.py', p.exitPromise);
    const out = p.lines.map((l) => l.line).join('\n');
    assert.equal(exit.code, 0, out);
    const init = JSON.parse(p.lines.find((l) => l.line.startsWith('{')).line);
    assert.deepEqual(init, {
      version: 'RFB 003.008', width: xvncAuth.geometry.width, height: xvncAuth.geometry.height, name: `vncap-interop-${xvncAuth.display}`,
    });
    await vncap.waitLine(new RegExp(`on port ${port}: session ended by the viewer`), PATIENCE_MS, t0);
  });
});

// ---------------------------------------------------------------- measurements

describe('VeNCrypt to QEMU nodes (vnc_tls, vnc_x509_path; issue 14)', () => {
  /** QEMU as Ganeti runs it with vnc_tls + vnc_x509_path, vnc_x509_verify off / on. */
  let qemuX509;
  let qemuX509Verify;
  /** A node whose certificate comes from another CA; one with anonymous TLS. */
  let qemuOtherCa;
  let qemuAnon;
  /** vncap with the cluster's CA and its client certificate; one with the CA only and --backend-tls-required. */
  let vncapX509;
  let vncapCaOnly;
  /** One certificate for every node (vnc.cluster.example) and vncap --backend-tls-name; a node with another name from that CA. */
  let qemuShared;
  let qemuSharedOtherName;
  let vncapShared;
  /** vncap whose --backend-tls-dir gets the client certificate later (SIGHUP). */
  let vncapReload;
  let reloadDir;
  /** vncap with the cluster's CA but a client certificate from another CA. */
  let vncapWrongClient;
  let cluster;
  const GREY = [170, 170, 170];

  before(async () => {
    cluster = x509Pki('cluster');
    const other = x509Pki('other');
    const shared = x509Pki('shared', { san: 'DNS:vnc.cluster.example', altSan: 'DNS:other.example' });
    reloadDir = fs.mkdtempSync(path.join(SCRATCH, 'backend-tls-reload-'));
    const wrongClientDir = fs.mkdtempSync(path.join(SCRATCH, 'backend-tls-wrong-client-'));
    fs.copyFileSync(path.join(cluster.caOnly, 'ca-cert.pem'), path.join(wrongClientDir, 'ca-cert.pem'));
    for (const f of ['client-cert.pem', 'client-key.pem']) fs.copyFileSync(path.join(other.vncap, f), path.join(wrongClientDir, f));
    fs.copyFileSync(path.join(cluster.caOnly, 'ca-cert.pem'), path.join(reloadDir, 'ca-cert.pem'));
    const common = ['--connect-timeout', String(CONNECT_TIMEOUT_S), '--connect-retries', '1'];
    [qemuX509, qemuX509Verify, qemuOtherCa, qemuAnon, vncapX509, vncapCaOnly, qemuShared, qemuSharedOtherName, vncapShared, vncapReload, vncapWrongClient] = await Promise.all([
      startQemu({ tls: { dir: cluster.node, verifyPeer: false } }),
      startQemu({ password: CLUSTER, tls: { dir: cluster.node, verifyPeer: true } }),
      startQemu({ tls: { dir: other.node, verifyPeer: false } }),
      startQemu({ tls: { anon: true } }),
      Vncap.start({ backendPassword: CLUSTER, extra: [...common, '--backend-tls-dir', cluster.vncap] }),
      Vncap.start({ backendPassword: CLUSTER, extra: [...common, '--backend-tls-dir', cluster.caOnly, '--backend-tls-required'] }),
      startQemu({ tls: { dir: shared.node, verifyPeer: true } }),
      startQemu({ tls: { dir: shared.nodeAlt, verifyPeer: false } }),
      Vncap.start({ extra: [...common, '--backend-tls-dir', shared.vncap, '--backend-tls-name', 'vnc.cluster.example'] }),
      Vncap.start({ backendPassword: CLUSTER, extra: [...common, '--backend-tls-dir', reloadDir] }),
      Vncap.start({ backendPassword: CLUSTER, extra: [...common, '--backend-tls-dir', wrongClientDir] }),
    ]);
  });

  /** noVNC refused with a reason matching `want`; the log names the backend. */
  async function refused(open, d, { port, host }, want) {
    const pw = randomPassword();
    const t0 = performance.now();
    const entry = await d.gwmRequest({ port, password: pw, ws: true, host });
    const page = await open('debian', entry, pw);
    const got = await outcome(page);
    assert.equal(got.state, 'error', `noVNC: ${got.status}`);
    assert.match(rejectionReason(got.status), want);
    await d.waitLine(new RegExp(`on port ${entry}: .*\\(${host ?? '127.0.0.1'}:${port}\\)`), PATIENCE_MS, t0);
    await page.close();
  }

  scenario('VeNCrypt X509None (verify-peer=no): noVNC (debian) sees QEMU\'s text through TLS', async ({ open }) => {
    const pw = randomPassword();
    const t0 = performance.now();
    const port = await vncapX509.gwmRequest({ port: qemuX509.port, password: pw, ws: true });
    const page = await open('debian', port, pw);
    const got = await outcome(page);
    assert.equal(got.state, 'connected', `noVNC: ${got.status}`);
    assert.match(got.status, /to QEMU/);
    await waitCanvas(page, { width: 640, height: 480, check: 'present', want: { rgb: GREY, count: 500 } });
    await vncapX509.waitLine(/VeNCrypt subtype X509None/, PATIENCE_MS, t0);
    await vncapX509.waitLine(/rfb client: TLS established/, PATIENCE_MS, t0);
    await shot(page, 'novnc-qemu-x509none');
    await page.close();
    await vncapX509.waitLine(new RegExp(`on port ${port}: session ended by the viewer`), PATIENCE_MS, t0);
  });

  scenario('VeNCrypt X509Vnc (verify-peer=yes, the cluster password): noVNC (npm) sees QEMU\'s text; vncap showed its client certificate', async ({ open }) => {
    const pw = randomPassword();
    const t0 = performance.now();
    const port = await vncapX509.gwmRequest({ port: qemuX509Verify.port, password: pw, ws: true });
    const page = await open('npm', port, pw);
    const got = await outcome(page);
    assert.equal(got.state, 'connected', `noVNC: ${got.status}`);
    await waitCanvas(page, { width: 640, height: 480, check: 'present', want: { rgb: GREY, count: 500 } });
    await vncapX509.waitLine(/VeNCrypt subtype X509Vnc/, PATIENCE_MS, t0);
    await shot(page, 'novnc-qemu-x509vnc');
    await page.close();
    await vncapX509.waitLine(new RegExp(`on port ${port}: session ended by the viewer`), PATIENCE_MS, t0);
  });

  scenario('VeNCrypt X509Vnc (verify-peer=yes): vncdotool\'s capture shows QEMU\'s text', async () => {
    const pw = randomPassword();
    const port = await vncapX509.gwmRequest({ port: qemuX509Verify.port, password: pw, ws: false });
    const png = await vncdoCapture(port, pw, 'vncdo-qemu-x509vnc');
    assert.equal(`${png.width}x${png.height}`, '640x480');
    assert.ok(png.colors.some(([n, rgb]) => rgb.join() === GREY.join() && n > 500), JSON.stringify(png.colors));
  });

  scenario('VeNCrypt X509None with --backend-tls-required and the CA only: vncdotool\'s capture shows QEMU\'s text', async () => {
    const pw = randomPassword();
    const port = await vncapCaOnly.gwmRequest({ port: qemuX509.port, password: pw, ws: false });
    const png = await vncdoCapture(port, pw, 'vncdo-qemu-x509none');
    assert.equal(`${png.width}x${png.height}`, '640x480');
    assert.ok(png.colors.some(([n, rgb]) => rgb.join() === GREY.join() && n > 500), JSON.stringify(png.colors));
  });

  scenario('VeNCrypt refused: a node certificate from another CA → "certificate not trusted" at the viewer', async ({ open }) => {
    await refused(open, vncapX509, { port: qemuOtherCa.port }, /^backend TLS: certificate not trusted/);
  });

  scenario('VeNCrypt refused: daddr "localhost" against a certificate for IP 127.0.0.1 → "certificate name mismatch" at the viewer', async ({ open }) => {
    await refused(open, vncapX509, { port: qemuX509.port, host: 'localhost' }, /^backend TLS: certificate name mismatch \(not valid for localhost/);
  });

  scenario('VeNCrypt refused: verify-peer=yes and no client certificate → "demands a client certificate" at the viewer', async ({ open }) => {
    await refused(open, vncapCaOnly, { port: qemuX509Verify.port }, /^backend TLS: the node demands a client certificate \(vnc_x509_verify\)/);
  });

  scenario('VeNCrypt refused: verify-peer=yes and a client certificate from another CA → "refused vncap\'s client certificate" at the viewer', async ({ open }) => {
    await refused(open, vncapWrongClient, { port: qemuX509Verify.port }, /^backend TLS: the node refused vncap's client certificate/);
  });

  scenario('VeNCrypt refused: anonymous TLS (tls-creds-anon) → a reason naming vnc_x509_path at the viewer', async ({ open }) => {
    await refused(open, vncapX509, { port: qemuAnon.port }, /anonymous TLS .*vnc_x509_path/);
  });

  scenario('one certificate for all nodes: --backend-tls-name vnc.cluster.example reaches the node at 127.0.0.1 (verify-peer=yes)', async () => {
    const pw = randomPassword();
    const port = await vncapShared.gwmRequest({ port: qemuShared.port, password: pw, ws: false });
    const png = await vncdoCapture(port, pw, 'vncdo-qemu-shared-name');
    assert.equal(`${png.width}x${png.height}`, '640x480');
  });

  scenario('--backend-tls-name: a node certificate from the same CA for another name is refused ("name mismatch")', async ({ open }) => {
    await refused(open, vncapShared, { port: qemuSharedOtherName.port }, /^backend TLS: certificate name mismatch \(not valid for vnc\.cluster\.example/);
  });

  scenario('SIGHUP re-reads --backend-tls-dir: refused without a client certificate, then logged in once it is added', async ({ open }) => {
    await refused(open, vncapReload, { port: qemuX509Verify.port }, /demands a client certificate/);
    for (const f of ['client-cert.pem', 'client-key.pem']) fs.copyFileSync(path.join(cluster.vncap, f), path.join(reloadDir, f));
    const t0 = performance.now();
    vncapReload.child.kill('SIGHUP');
    await vncapReload.waitLine(/reloaded the backend TLS files from /, PATIENCE_MS, t0);
    const pw = randomPassword();
    const port = await vncapReload.gwmRequest({ port: qemuX509Verify.port, password: pw, ws: false });
    const png = await vncdoCapture(port, pw, 'vncdo-qemu-x509vnc-reloaded');
    assert.equal(`${png.width}x${png.height}`, '640x480');
  });

  scenario('--backend-tls-required: a QEMU without TLS is refused with a reason naming vnc_tls', async ({ open }) => {
    await refused(open, vncapCaOnly, { port: qemuOpen.port }, /does not offer VeNCrypt.*vnc_tls/);
  });
});

// ---------------------------------------------------------------- TigerVNC's viewer

describe('TigerVNC\'s viewer through vncap (VeNCrypt X509Vnc from vncap --cert; issue 14)', () => {
  /** The Xvnc desktop's pixels, of which at least half must show in the viewer's window (its F8 hint covers a band at first). */
  const desktop = () => xvncNone.geometry.width * xvncNone.geometry.height;
  const solidCount = (stat) => stat.colors.find(([, rgb]) => rgb.join() === SOLID_RGB.join())?.[0] ?? 0;

  /**
   * xtigervncviewer -SecurityTypes X509Vnc -X509CA (vncap's self-signed
   * certificate, for IP 127.0.0.1) on its own Xvfb into entry port `port`:
   * waits for vncap's "authenticated", then for the window to show Xvnc's
   * solid root colour; ends the viewer and waits for vncap's "(TLS)"
   * session end. Resolves with the viewer's log lines and the screenshot.
   */
  async function tigerSeesSolid(xvfb, port, pw, t0, name) {
    const x = await xvfb();
    const viewer = startTigerViewer({ display: x.display, port, password: pw, ca: tlsCert.cert });
    await vncapTls.waitLine(new RegExp(`: authenticated; connecting to backend 127\\.0\\.0\\.1:${xvncNone.port}$`), PATIENCE_MS, t0);
    const screen = await waitScreen(x.display, name, (stat) => solidCount(stat) >= desktop() / 2, { viewer });
    assert.ok(solidCount(screen) <= desktop(), `more ${SOLID} than the desktop has: ${JSON.stringify(screen.colors.slice(0, 6))}`);
    await viewer.waitLine(/CConnection: Authentication success!/);
    await viewer.stop();
    await vncapTls.waitLine(new RegExp(`on port ${port} \\(TLS\\): session ended by the viewer`), PATIENCE_MS, t0);
    const log = viewer.lines.map((l) => l.line);
    // TLS 1.3, where vncap once sent session tickets TigerVNC 1.12 stalled on.
    assert.match(log.join('\n'), /TLS handshake completed with\s+\(TLS1\.3\)/, log.join('\n'));
    return { log, screen };
  }

  scenario('TigerVNC viewer (X509Vnc) → vncap --cert ("ws": false) → Xvnc None: offered VeNCrypt and VNC auth, in over TLS, the window is the solid root colour', async ({ xvfb, t }) => {
    const pw = randomPassword();
    const t0 = performance.now();
    const port = await vncapTls.gwmRequest({ port: xvncNone.port, password: pw, ws: false, tls: null });
    const { log, screen } = await tigerSeesSolid(xvfb, port, pw, t0, 'tigervnc-x509vnc');
    t.diagnostic(`${solidCount(screen)} of the ${desktop()} desktop pixels ${SOLID} after ${screen.tries} screenshot(s)`);
    const offered = log.filter((l) => /Server offers security type /.test(l)).map((l) => l.replace(/.*Server offers security type /, ''));
    assert.deepEqual(offered, ['VeNCrypt(19)', 'VncAuth(2)', 'X509Vnc (261)'], log.join('\n'));
    assert.ok(log.some((l) => /Choosing security type X509Vnc \(261\)/.test(l)), log.join('\n'));
    await vncapTls.waitLine(/rfb server: TLS established/, PATIENCE_MS, t0);
  });

  scenario('TLS-only native console ("ws": false, "tls": true): only VeNCrypt offered; vncdotool (no VeNCrypt) and a viewer picking VNC auth are refused with the reason, then TigerVNC\'s viewer gets in on the same ticket', async ({ xvfb }) => {
    const pw = randomPassword();
    const t0 = performance.now();
    const port = await vncapTls.gwmRequest({ port: xvncNone.port, password: pw, ws: false, tls: true });

    const vncdo = await vncdoFails(port, pw);
    assert.notEqual(vncdo.exit.code, 0, `vncdo succeeded: ${vncdo.output}`);
    assert.match(vncdo.output, /unknown security types: \(19,\)/);
    await vncapTls.waitLine(new RegExp(`on port ${port}: closed before authenticating`), PATIENCE_MS, t0);

    const raw = await rfbChooseType(port, 2);
    assert.deepEqual(raw, {
      version: 'RFB 003.008\n', types: [19], result: 1, reason: 'security type not offered',
    });
    await vncapTls.waitLine(new RegExp(`on port ${port}: RFB handshake: security type not offered`), PATIENCE_MS, t0);

    const { log } = await tigerSeesSolid(xvfb, port, pw, performance.now(), 'tigervnc-x509vnc-tls-only');
    const offered = log.filter((l) => /Server offers security type /.test(l)).map((l) => l.replace(/.*Server offers security type /, ''));
    assert.deepEqual(offered, ['VeNCrypt(19)', 'X509Vnc (261)'], log.join('\n'));
  });
});

describe('when real viewers first speak after the TCP accept', () => {
  scenario('Chromium (noVNC): its WebSocket upgrade arrives well inside the sniff silence', async ({ open, t }) => {
    const first = [];
    const answered = [];
    for (let i = 0; i < 5; i++) {
      const pw = randomPassword();
      const t0 = performance.now();
      const port = await vncap.gwmRequest({ port: testvnc.port, password: pw, ws: true });
      const tap = await startTap(port);
      taps.push(tap);
      const page = await open('debian', tap.port, pw);
      const got = await outcome(page);
      assert.equal(got.state, 'connected', `noVNC via the tap: ${got.status}`);
      const [rec] = tap.records;
      assert.ok(rec.clientFirstBytes.startsWith('GET /websockify'), JSON.stringify(rec.clientFirstBytes));
      first.push(rec.clientFirst);
      answered.push(rec.serverFirst);
      await page.close();
      // Through the tap a write toward the closed tab may fail before a read
      // sees its end: either way the viewer ended it.
      await vncap.waitLine(new RegExp(`on port ${port}: session ended by the viewer`), PATIENCE_MS, t0);
    }
    measurements.chromium_ws_upgrade = summary(first);
    measurements.chromium_101_answer = summary(answered);
    t.diagnostic(`Chromium first byte after accept (ms): ${JSON.stringify(measurements.chromium_ws_upgrade)}`);
    t.diagnostic(`vncap's 101 answer after accept (ms): ${JSON.stringify(measurements.chromium_101_answer)}`);
    assert.ok(Math.max(...first) < SILENCE_MS, `a browser took ${Math.max(...first)} ms to speak`);
  });

  // A native-only console (GWM's "ws": false) cannot be a WebSocket, so its
  // port does not sniff: vncap's ProtocolVersion goes out at the accept,
  // not after the silence that tells a waiting native viewer from a browser.
  scenario('vncdotool: silent until the server speaks; a native-only console speaks at once', async ({ t }) => {
    const serverFirst = [];
    const clientFirst = [];
    for (let i = 0; i < 3; i++) {
      const pw = randomPassword();
      const port = await vncap.gwmRequest({ port: testvnc.port, password: pw, ws: false });
      const tap = await startTap(port);
      taps.push(tap);
      await vncdoCapture(tap.port, pw, `vncdo-measure-${i}`);
      const [rec] = tap.records;
      assert.ok(rec.serverFirst < SILENCE_MS, `vncap spoke after ${rec.serverFirst} ms, as if it sniffed`);
      assert.ok(rec.clientFirst > rec.serverFirst, `vncdotool spoke first (${rec.clientFirst} ms)`);
      assert.ok(rec.clientFirstBytes.startsWith('RFB 003.'), JSON.stringify(rec.clientFirstBytes));
      serverFirst.push(rec.serverFirst);
      clientFirst.push(rec.clientFirst);
    }
    measurements.vncdo_server_version = summary(serverFirst);
    measurements.vncdo_first_byte = summary(clientFirst);
    t.diagnostic(`vncap's ProtocolVersion to vncdotool after accept (ms): ${JSON.stringify(measurements.vncdo_server_version)}`);
    t.diagnostic(`vncdotool's first byte after accept (ms): ${JSON.stringify(measurements.vncdo_first_byte)}`);
  });
});

describe('signed tickets across two vncaps (issue 16)', () => {
  // Two instances sharing --ticket-key: `vncap request --single-port URL`
  // asks one, noVNC opens the URL it prints on the other (the page's query
  // names that one's single port; path and password come from the URL's
  // fragment, as noVNC reads them); a second open of the same URL is a
  // replay at that instance, refused.
  scenario('noVNC (debian) opens `vncap request --single-port`\'s URL: a ticket one vncap signed, admitted by the other once', async () => {
    const key = path.join(SCRATCH, 'ticket.key');
    fs.writeFileSync(key, randomBytes(32), { mode: 0o600 });
    const extra = ['--single-port', '0', '--ticket-key', key];
    const [issuer, admitter] = await Promise.all([
      Vncap.start({ backendPassword: CLUSTER, extra }),
      Vncap.start({ backendPassword: CLUSTER, extra }),
    ]);
    const pages = [];
    try {
      const { line } = await admitter.waitLine(/ready: control on /);
      const single = Number(/single port (\d+)/.exec(line)[1]);
      const base = `${web.debian.base}/${NOVNC_BUILDS.debian.page}?host=127.0.0.1&port=${single}&logging=warn`;
      const pw = randomPassword();
      const r = spawnSync(VNCAP, ['request', '--control', `${issuer.control.host}:${issuer.control.port}`,
        '--daddr', '127.0.0.1', '--dport', String(testvnc.port), '--password', pw, '--single-port', base],
      { encoding: 'utf8', timeout: PATIENCE_MS });
      assert.equal(r.status, 0, r.stderr);
      const url = /^url (.*)$/m.exec(r.stdout)?.[1] ?? '';
      const token = /token%3D([A-Za-z0-9_-]+)/.exec(url)?.[1] ?? '';
      assert.ok(url.startsWith(`${base}#autoconnect=1&path=websockify%3Ftoken%3D`) && token.length > 32, r.stdout);
      const t0 = performance.now();
      const first = await browser.newPage();
      pages.push(first);
      await first.goto(url, { timeout: PATIENCE_MS });
      const got = await outcome(first);
      assert.equal(got.state, 'connected', `noVNC: ${got.status}`);
      await admitter.waitLine(/signed ticket [0-9a-f]{8} admitted/, PATIENCE_MS, t0);
      await first.close();
      await admitter.waitLine(/on single port \d+: session ended by the viewer/, PATIENCE_MS, t0);
      const again = await browser.newPage();
      pages.push(again);
      await again.goto(url, { timeout: PATIENCE_MS });
      const replay = await outcome(again);
      assert.equal(replay.state, 'error', `a replay at the same vncap: ${replay.status}`);
      await admitter.waitLine(/refused: no such console .*\(signed ticket [0-9a-f]{8}\)/, PATIENCE_MS, t0);
      for (const d of [issuer, admitter]) {
        assert.ok(!d.lines.some((l) => l.line.includes(token) || l.line.includes(pw)), `${d.name} logged the token or password`);
      }
    } finally {
      for (const page of pages) await page.close().catch(() => {});
      await Promise.all([issuer.stop(), admitter.stop()]);
    }
  });
});

describe('two vncaps behind HAProxy (mode tcp, send-proxy-v2, round robin; issue 16)', () => {
  /**
   * What an RFB 3.8 server offers a viewer connecting from `localAddress`:
   * `{types}` (admitted: the security types) or `{types: [], reason}`
   * (refused with "connection failed").
   */
  const rfbOffer = ({ host, port, localAddress }) => within(PATIENCE_MS, `RFB offer via ${host}:${port}`, new Promise((resolve, reject) => {
    const s = net.connect({ host, port, localAddress });
    let got = Buffer.alloc(0);
    let sent = false;
    const done = (v) => { s.destroy(); resolve(v); };
    s.on('data', (d) => {
      got = Buffer.concat([got, d]);
      if (!sent && got.length >= 12) {
        s.write('RFB 003.008\n');
        sent = true;
      }
      if (got.length < 13) return;
      const n = got[12];
      if (n > 0 && got.length >= 13 + n) done({ types: [...got.subarray(13, 13 + n)] });
      if (n === 0 && got.length >= 17 && got.length >= 17 + got.readUInt32BE(13)) {
        done({ types: [], reason: got.subarray(17, 17 + got.readUInt32BE(13)).toString('utf8') });
      }
    });
    s.on('error', reject);
    s.on('close', () => reject(new Error(`closed after ${got.length} bytes`)));
  }));

  /** The HTTP status a WebSocket upgrade with `token` gets at 127.0.0.1:`port`. */
  const upgradeStatus = (port, token) => within(PATIENCE_MS, `upgrade at ${port}`, new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port, path: `/websockify?token=${token}`,
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': randomBytes(16).toString('base64') },
    });
    req.on('response', (res) => { res.resume(); resolve(res.statusCode); });
    req.on('upgrade', (res, socket) => { socket.destroy(); resolve(101); });
    req.on('error', reject);
    req.end();
  }));

  const singlePort = async (d) => Number(/single port (\d+)/.exec((await d.waitLine(/ready: control on /)).line)[1]);

  let a;
  let b;
  let haproxy;
  let front;
  let block;
  before(async () => {
    const key = path.join(SCRATCH, 'balanced-ticket.key');
    fs.writeFileSync(key, randomBytes(32), { mode: 0o600 });
    // HAProxy reaches the vncaps from 127.0.0.1: that is the trusted proxy.
    const extra = ['--single-port', '0', '--ticket-key', key, '--trusted-proxy', '127.0.0.1', '--web-root', NOVNC];
    block = privatePortBlock();
    [a, b] = await Promise.all([
      Vncap.start({ backendPassword: CLUSTER, ports: block, extra }),
      Vncap.start({ backendPassword: CLUSTER, extra }),
    ]);
    const [pa, pb] = await Promise.all([singlePort(a), singlePort(b)]);
    front = await freePort();
    const [lo, hi] = block.split('-');
    haproxy = await startHaproxy(`global
    maxconn 512
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
# The single ports of both instances, round robin, the client named in a
# PROXY v2 header.
frontend consoles
    bind 127.0.0.1:${front}
    default_backend vncaps
backend vncaps
    balance roundrobin
    server a 127.0.0.1:${pa} send-proxy-v2
    server b 127.0.0.1:${pb} send-proxy-v2
# Instance a's entry ports on 127.0.0.3, each to the same port on a.
frontend ports
    bind 127.0.0.3:${lo}-${hi}
    default_backend ports_a
backend ports_a
    server a 127.0.0.1 send-proxy-v2
`);
  });
  after(async () => {
    await Promise.all([haproxy?.stop(), a?.stop(), b?.stop()]);
  });

  scenario('noVNC (debian) loads its page from --web-root through HAProxy and opens a console the other vncap signed; a replay there is refused', async () => {
    const base = `http://127.0.0.1:${front}/${NOVNC_BUILDS.debian.page}?logging=warn`;
    const pages = [];
    try {
      // Round robin decides which instance a page's WebSocket reaches: ask
      // the instance it did not reach last time, until one crosses over
      // (each try is even odds; 8 tries).
      let crossed = null;
      let issuer = a;
      for (let i = 0; i < 8 && !crossed; i++) {
        const pw = randomPassword();
        const r = spawnSync(VNCAP, ['request', '--control', `${issuer.control.host}:${issuer.control.port}`,
          '--daddr', '127.0.0.1', '--dport', String(testvnc.port), '--password', pw, '--single-port', base],
        { encoding: 'utf8', timeout: PATIENCE_MS });
        assert.equal(r.status, 0, r.stderr);
        const url = /^url (.*)$/m.exec(r.stdout)?.[1] ?? '';
        const token = /token%3D([A-Za-z0-9_-]+)/.exec(url)?.[1] ?? '';
        assert.ok(token.length > 32, r.stdout);
        const t0 = performance.now();
        const page = await browser.newPage();
        pages.push(page);
        const failed = [];
        page.on('response', (res) => { if (res.status() >= 400 && !res.url().endsWith('/package.json')) failed.push(`${res.status()} ${res.url()}`); });
        const nav = await page.goto(url, { timeout: PATIENCE_MS });
        assert.equal(nav.status(), 200, 'the page, from --web-root through HAProxy');
        const got = await outcome(page);
        assert.equal(got.state, 'connected', `noVNC: ${got.status}`);
        assert.deepEqual(failed, [], 'every file of the page loaded');
        const admitted = /signed ticket [0-9a-f]{8} admitted/;
        const admitter = await Promise.any([a, b].map((d) => d.waitLine(admitted, PATIENCE_MS, t0).then(() => d)));
        // The viewer's own address, from HAProxy's PROXY v2 header.
        await admitter.waitLine(/127\.0\.0\.1:\d+ on single port \d+: via PROXY v2 from 127\.0\.0\.1:\d+/, PATIENCE_MS, t0);
        await page.close();
        await admitter.waitLine(/on single port \d+: session ended by the viewer/, PATIENCE_MS, t0);
        if (admitter !== issuer) {
          crossed = { admitter, token };
        } else {
          issuer = issuer === a ? b : a;
        }
      }
      assert.ok(crossed, 'in 8 tries no console crossed from one vncap to the other');
      // The same ticket again at the instance that admitted it: refused
      // before any upgrade (a used nonce is 404).
      const status = await upgradeStatus(await singlePort(crossed.admitter), crossed.token);
      assert.equal(status, 404, 'a replay at the same instance');
    } finally {
      for (const page of pages) await page.close().catch(() => {});
    }
  });

  scenario('a pinned ticket through HAProxy admits the client its PROXY header names, and no other address', async () => {
    const ask = async (ip) => {
      const reply = await a.controlRaw(`${JSON.stringify({
        daddr: '127.0.0.1', dport: testvnc.port, password: randomPassword(), ws: false, tls: false, client: { ip },
      })}\r\n`);
      const port = Number(reply.trim());
      assert.ok(Number.isInteger(port) && port > 0, `a port, not ${JSON.stringify(reply)}`);
      return port;
    };
    // Pinned to 127.0.0.2, reached from 127.0.0.2 through HAProxy (which
    // itself connects from 127.0.0.1): admitted, VNC authentication offered.
    const mine = await ask('127.0.0.2');
    const admitted = await rfbOffer({ host: '127.0.0.3', port: mine, localAddress: '127.0.0.2' });
    assert.deepEqual(admitted.types, [2], JSON.stringify(admitted));
    // Pinned to 127.0.0.2, reached from 127.0.0.4 through the same HAProxy:
    // refused, though HAProxy's own address is the same.
    const theirs = await ask('127.0.0.2');
    const refused = await rfbOffer({ host: '127.0.0.3', port: theirs, localAddress: '127.0.0.4' });
    assert.deepEqual(refused.types, [], JSON.stringify(refused));
    assert.ok(refused.reason.length > 0, 'a reason');
    await a.waitLine(new RegExp(`127\\.0\\.0\\.4:\\d+ on port ${theirs}: via PROXY v2 from 127\\.0\\.0\\.1`));
  });
});

// ---------------------------------------------------------------- recordings

/** Bytes of RFB payload a kept fixture holds at most (the rest is cut at a chunk boundary). */
const FIXTURE_BYTES = 48 * 1024;

function peerVersions() {
  const first = (cmd, args) => {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    return `${r.stdout}${r.stderr}`.trim().split('\n')[0];
  };
  const vncdo = spawnSync('python3', ['-c', 'import importlib.metadata as m; print(m.version("vncdotool"))'], { encoding: 'utf8' }).stdout.trim();
  return {
    Xvnc: first('Xvnc', ['-version']),
    qemu: first('qemu-system-x86_64', ['--version']),
    chromium: first(process.env.CHROMIUM || '/usr/bin/chromium', ['--version']),
    'novnc-debian': NOVNC_BUILDS.debian.version,
    'novnc-npm': NOVNC_BUILDS.npm.version,
    vncdotool: vncdo,
  };
}

/**
 * Copies the recordings of scenarios 1-4 (viewer leg and backend leg) into
 * `dir` as `<name>-viewer.txt` / `<name>-backend.txt`, with a header saying
 * how they were made, cut after FIXTURE_BYTES of payload.
 */
function keepFixtures(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const files = fs.readdirSync(RECORD_DIR).map((f) => path.join(RECORD_DIR, f));
  const versions = peerVersions();
  const peers = {
    'novnc-xvnc-none': `noVNC ${versions['novnc-debian']} (Debian) in ${versions.chromium} -> vncap (ws) -> ${versions.Xvnc} -SecurityTypes None, root xsetroot -solid ${SOLID}`,
    'novnc-xvnc-vncauth': `noVNC ${versions['novnc-debian']} (Debian) in ${versions.chromium} -> vncap (ws) -> ${versions.Xvnc} -SecurityTypes VncAuth (cluster password ${CLUSTER}), -retro`,
    'novnc-qemu': `noVNC ${versions['novnc-debian']} (Debian) in ${versions.chromium} -> vncap (ws) -> ${versions.qemu} -machine none -vnc (no password)`,
    'vncdo-xvnc-none': `vncdotool ${versions.vncdotool} (vncdo capture) -> vncap (native RFB) -> ${versions.Xvnc} -SecurityTypes None, root xsetroot -solid ${SOLID}`,
  };
  for (const [name, { port, pw }] of Object.entries(recordings)) {
    const viewer = files.find((f) => f.endsWith('-viewer.txt') && fs.readFileSync(f, 'utf8').includes(`# door: port ${port},`));
    if (!viewer) throw new Error(`no recording for ${name} (port ${port})`);
    const backend = viewer.replace(/-viewer\.txt$/, '-backend.txt');
    for (const [leg, file] of [['viewer', viewer], ['backend', backend]]) {
      const lines = fs.readFileSync(file, 'utf8').split('\n');
      const header = lines.filter((l) => l.startsWith('#') && !/^# (viewer|door|started|backend|viewer-leg):/.test(l));
      header.push(
        `# peers: ${peers[name]}`,
        '# how: tests/fixtures/rfb/interop/capture.sh (the interop suite with INTEROP_FIXTURES; vncap serve --record)',
        // The ticket's one-time password (what the viewer typed), and what
        // the backend asked of vncap (the cluster password, or nothing).
        `# password: ${pw}`,
        `# server-password: ${name.includes('vncauth') ? CLUSTER : ''}`,
      );
      const body = [];
      let bytes = 0;
      let cut = false;
      for (const l of lines) {
        if (!/^[CS]: /.test(l)) continue;
        const n = (l.length - 2) / 3;
        if (bytes + n > FIXTURE_BYTES) {
          const keep = FIXTURE_BYTES - bytes;
          if (keep > 0) body.push(l.slice(0, 2 + 3 * keep));
          bytes += Math.max(keep, 0);
          cut = true;
          break;
        }
        bytes += n;
        body.push(l);
      }
      header.push(`# trimmed: ${cut ? `after ${bytes} bytes (the streams go on)` : 'no'}`);
      const target = path.join(dir, `${name}-${leg}.txt`);
      fs.writeFileSync(target, `${[...header, ...body].join('\n')}\n`);
      process.stdout.write(`# fixture ${target} (${bytes} bytes)\n`);
    }
  }
}
