// The real-peer interop suite: vncap between third-party peers as users run
// them. Viewers: noVNC 1.3 (Debian's `novnc`) in headless Chromium, driven
// by playwright-core, over ws and over wss (a second vncap with a
// self-signed certificate; noVNC's encrypt=1); vncdotool (a native RFB viewer). Backends: the
// project's testvnc (colour bars), TigerVNC's Xvnc with VNC authentication,
// QEMU's VNC server with and without a password. Plus a measurement of when
// real viewers first speak after the TCP accept (the sniff's silence timeout
// is 300 ms, core/src/sniff.rs).
//
// It is not a load test and not a protocol conformance suite: each test is
// one console as a user would open it. Run by tests/interop/run.sh
// (`node --test`); every process it starts is stopped in `after`.
//
// DESIGN.md: "Entry points", "Sessions", "The control channel" (dialect 1,
// `--backend-password-file`).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import {
  PATIENCE_MS, SCRATCH, Vncap, connectOutcome, killAll, noVncUrl, pngStat,
  randomPassword, selfSignedCert, serveNoVnc, startChromium, startQemu, startTap, startTestvnc, startXvnc, summary,
  vncdoCapture, vncdoFails,
} from './lib.mjs';

/** Ganeti's cluster VNC password: every backend that asks for one gets this. */
const CLUSTER = 'Cl8sterPw';
/** vncap's sniff silence timeout (core/src/sniff.rs SILENCE_TIMEOUT_MS). */
const SILENCE_MS = 300;

let vncap;
/** A second vncap with --cert/--key (wss). */
let vncapTls;
let testvnc;
let xvnc;
let qemuOpen;
let qemuLocked;
let web;
let browser;
let chromiumHandle;
const taps = [];
const measurements = {};

before(async () => {
  web = await serveNoVnc();
  const tls = selfSignedCert();
  [vncap, vncapTls, testvnc, xvnc, qemuOpen, qemuLocked] = await Promise.all([
    Vncap.start({ backendPassword: CLUSTER }),
    Vncap.start({ backendPassword: CLUSTER, extra: ['--cert', tls.cert, '--key', tls.key] }),
    startTestvnc({ password: CLUSTER }),
    startXvnc({ password: CLUSTER }),
    startQemu(),
    startQemu({ password: CLUSTER }),
  ]);
  chromiumHandle = await startChromium(chromium);
  browser = chromiumHandle.context;
});

after(async () => {
  if (chromiumHandle) await chromiumHandle.close();
  if (web) web.close();
  for (const t of taps) t.close();
  await killAll();
  if (Object.keys(measurements).length) {
    const file = path.join(SCRATCH, 'measurements.json');
    fs.writeFileSync(file, JSON.stringify(measurements, null, 2));
    process.stdout.write(`# first-byte measurements (ms after TCP accept): ${JSON.stringify(measurements)}\n`);
  }
  if (process.env.INTEROP_KEEP) {
    process.stdout.write(`# kept screenshots and captures in ${SCRATCH}\n`);
  } else {
    fs.rmSync(SCRATCH, { recursive: true, force: true, maxRetries: 5 });
  }
});

// ---------------------------------------------------------------- noVNC helpers

/** Opens noVNC on `entryPort` with `password` in a new tab (`encrypt`: wss). */
async function openNoVnc(entryPort, password, { encrypt = false } = {}) {
  const page = await browser.newPage();
  await page.setViewportSize({ width: 800, height: 600 });
  page.on('pageerror', (e) => process.stderr.write(`  page error: ${e}\n`));
  await page.goto(noVncUrl(web.base, entryPort, password, { encrypt }), { timeout: PATIENCE_MS });
  return page;
}

/**
 * Waits until noVNC says connected or shows an error status; resolves with
 * `{state: 'connected' | 'error', status}` (the status bar's text).
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
 * and `expect(pixels)` holds; fails with what the canvas last showed.
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
      // check === 'present': at least want.count pixels of colour want.rgb
      const d = ctx.getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) {
        if (d[i] === want.rgb[0] && d[i + 1] === want.rgb[1] && d[i + 2] === want.rgb[2]) n++;
      }
      return n >= want.count;
    }, { width, height, points, check, want }, { timeout: PATIENCE_MS, polling: 'raf' });
  } catch (e) {
    const seen = await canvasPixels(page, points).catch(() => null);
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

// ---------------------------------------------------------------- browser

describe('noVNC in Chromium through vncap', () => {
  test('testvnc backend: connected, the colour bars on the canvas; a second browser on the used ticket is refused', async () => {
    const pw = randomPassword();
    const t0 = performance.now();
    const port = await vncap.gwmRequest({ port: testvnc.port, password: pw, ws: true });
    const page = await openNoVnc(port, pw);
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
    const second = await openNoVnc(port, pw);
    const refused = await outcome(second);
    assert.equal(refused.state, 'error');
    assert.match(refused.status, /Failed to connect to server/);
    await second.close();

    // The first session is untouched by the second attempt; closing the tab ends it.
    assert.ok(await page.evaluate(() => document.documentElement.classList.contains('noVNC_connected')));
    await page.close();
    await vncap.waitLine(new RegExp(`on port ${port}: session ended by the viewer`), PATIENCE_MS, t0);
  });

  test('wss (vncap --cert, noVNC encrypt=1, "tls": true): connected (encrypted), the colour bars on the canvas', async () => {
    const pw = randomPassword();
    const t0 = performance.now();
    const port = await vncapTls.gwmRequest({ port: testvnc.port, password: pw, ws: true, tls: true });
    const page = await openNoVnc(port, pw, { encrypt: true });
    const got = await outcome(page);
    assert.equal(got.state, 'connected', `noVNC: ${got.status}`);
    assert.match(got.status, /^Connected \(encrypted\) to vncap test backend/);
    const { points, want } = colourBars();
    await waitCanvas(page, { width: 640, height: 480, points, want });
    await shot(page, 'novnc-wss');
    await page.close();
    await vncapTls.waitLine(new RegExp(`on port ${port} \\(TLS\\): session ended by the viewer`), PATIENCE_MS, t0);
  });

  test('TigerVNC Xvnc (VNC authentication, cluster password): connected, its root weave on the canvas', async () => {
    const pw = randomPassword();
    const t0 = performance.now();
    const port = await vncap.gwmRequest({ port: xvnc.port, password: pw, ws: true });
    const page = await openNoVnc(port, pw);
    const got = await outcome(page);
    assert.equal(got.state, 'connected', `noVNC: ${got.status}`);
    assert.match(got.status, new RegExp(`to vncap-interop-${xvnc.display}`));
    const { width, height } = xvnc.geometry;
    await waitCanvas(page, { width, height, check: 'present', want: { rgb: [255, 255, 255], count: (width * height) / 8 } });
    const h = await canvasHistogram(page);
    // X's classic root weave (-retro): about a quarter white, the rest black.
    assert.deepEqual(Object.keys(h).sort(), ['0,0,0', '255,255,255'], `colours ${JSON.stringify(h)}`);
    assertWeave(h['255,255,255'], width * height);
    await shot(page, 'novnc-xvnc');
    await page.close();
    await vncap.waitLine(new RegExp(`on port ${port}: session ended by the viewer`), PATIENCE_MS, t0);
  });

  test('QEMU VNC server without a password: connected, its "no graphic display" text on the canvas', async () => {
    const pw = randomPassword();
    const t0 = performance.now();
    const port = await vncap.gwmRequest({ port: qemuOpen.port, password: pw, ws: true });
    const page = await openNoVnc(port, pw);
    const got = await outcome(page);
    assert.equal(got.state, 'connected', `noVNC: ${got.status}`);
    assert.match(got.status, /to QEMU/);
    await waitCanvas(page, { width: 640, height: 480, check: 'present', want: { rgb: [170, 170, 170], count: 500 } });
    await shot(page, 'novnc-qemu');
    await page.close();
    await vncap.waitLine(new RegExp(`on port ${port}: session ended by the viewer`), PATIENCE_MS, t0);
  });

  test('wrong password: noVNC shows "Authentication failure", the ticket is burnt, the backend never reached', async () => {
    const pw = randomPassword();
    const t0 = performance.now();
    const port = await vncap.gwmRequest({ port: qemuLocked.port, password: pw, ws: true });
    const page = await openNoVnc(port, `${pw.slice(0, 7)}!`);
    const got = await outcome(page);
    assert.equal(got.state, 'error');
    assert.equal(got.status, 'New connection has been rejected with reason: Authentication failure');
    await vncap.waitLine(new RegExp(`on port ${port}: wrong password; ticket burnt`), PATIENCE_MS, t0);
    await vncap.waitLine(new RegExp(`entry port ${port} closed`), PATIENCE_MS, t0);
    assert.equal(await connectOutcome(port), 'refused', `entry port ${port} still open after a burnt ticket`);
    assert.ok(!vncap.lines.some((l) => l.at >= t0 && l.line.includes(`backend 127.0.0.1:${qemuLocked.port}`)), 'vncap reached the backend for a wrong password');
    await page.close();
  });
});

// ---------------------------------------------------------------- native viewer

describe('vncdotool (native RFB viewer) through vncap', () => {
  test('TigerVNC Xvnc: the capture is its root weave', async () => {
    const pw = randomPassword();
    const t0 = performance.now();
    const port = await vncap.gwmRequest({ port: xvnc.port, password: pw, ws: false });
    const png = await vncdoCapture(port, pw, 'vncdo-xvnc');
    const { width, height } = xvnc.geometry;
    assert.equal(`${png.width}x${png.height}`, `${width}x${height}`);
    assert.deepEqual(png.colors.map(([, rgb]) => rgb.join()), ['0,0,0', '255,255,255'], JSON.stringify(png.colors));
    assertWeave(png.colors[1][0], width * height);
    await vncap.waitLine(new RegExp(`on port ${port}: session ended by the viewer`), PATIENCE_MS, t0);
  });

  test('QEMU with a password (password-secret, the cluster password): the capture shows its text', async () => {
    const pw = randomPassword();
    const t0 = performance.now();
    const port = await vncap.gwmRequest({ port: qemuLocked.port, password: pw, ws: false });
    const png = await vncdoCapture(port, pw, 'vncdo-qemu-password');
    assert.equal(`${png.width}x${png.height}`, '640x480');
    const grey = png.colors.find(([, rgb]) => rgb.join() === '170,170,170');
    assert.ok(grey && grey[0] > 500, `no grey text in ${JSON.stringify(png.colors)}`);
    await vncap.waitLine(new RegExp(`on port ${port}: session ended by the viewer`), PATIENCE_MS, t0);
  });

  test('QEMU without a password: the capture shows its text', async () => {
    const pw = randomPassword();
    const port = await vncap.gwmRequest({ port: qemuOpen.port, password: pw, ws: false });
    const png = await vncdoCapture(port, pw, 'vncdo-qemu-open');
    assert.equal(`${png.width}x${png.height}`, '640x480');
    assert.ok(png.colors.some(([n, rgb]) => rgb.join() === '170,170,170' && n > 500), JSON.stringify(png.colors));
  });

  test('testvnc: the capture is the colour bars', async () => {
    const pw = randomPassword();
    const port = await vncap.gwmRequest({ port: testvnc.port, password: pw, ws: false });
    const png = await vncdoCapture(port, pw, 'vncdo-testvnc');
    const { points, want } = colourBars();
    assert.deepEqual(pngStat(png.png, points).points, want);
  });

  test('wrong password: vncdotool fails, the ticket is burnt', async () => {
    const pw = randomPassword();
    const t0 = performance.now();
    const port = await vncap.gwmRequest({ port: xvnc.port, password: pw, ws: false });
    const r = await vncdoFails(port, 'not-it!!');
    assert.notEqual(r.exit.code, 0, `vncdo succeeded: ${r.output}`);
    await vncap.waitLine(new RegExp(`on port ${port}: wrong password; ticket burnt`), PATIENCE_MS, t0);
    await vncap.waitLine(new RegExp(`entry port ${port} closed`), PATIENCE_MS, t0);
    assert.equal(await connectOutcome(port), 'refused');
  });
});

// ---------------------------------------------------------------- measurements

describe('when real viewers first speak after the TCP accept', () => {
  test('Chromium (noVNC): its WebSocket upgrade arrives well inside the sniff silence', async (t) => {
    const first = [];
    const answered = [];
    for (let i = 0; i < 5; i++) {
      const pw = randomPassword();
      const t0 = performance.now();
      const port = await vncap.gwmRequest({ port: testvnc.port, password: pw, ws: true });
      const tap = await startTap(port);
      taps.push(tap);
      const page = await openNoVnc(tap.port, pw);
      const got = await outcome(page);
      assert.equal(got.state, 'connected', `noVNC via the tap: ${got.status}`);
      const [rec] = tap.records;
      assert.ok(rec.clientFirstBytes.startsWith('GET /websockify'), JSON.stringify(rec.clientFirstBytes));
      first.push(rec.clientFirst);
      answered.push(rec.serverFirst);
      await page.close();
      await vncap.waitLine(new RegExp(`on port ${port}: session ended by the viewer`), PATIENCE_MS, t0);
    }
    measurements.chromium_ws_upgrade = summary(first);
    measurements.chromium_101_answer = summary(answered);
    t.diagnostic(`Chromium first byte after accept (ms): ${JSON.stringify(measurements.chromium_ws_upgrade)}`);
    t.diagnostic(`vncap's 101 answer after accept (ms): ${JSON.stringify(measurements.chromium_101_answer)}`);
    assert.ok(Math.max(...first) < SILENCE_MS, `a browser took ${Math.max(...first)} ms to speak`);
  });

  test('vncdotool: silent until the server speaks; vncap speaks after the silence timeout', async (t) => {
    const serverFirst = [];
    const clientFirst = [];
    for (let i = 0; i < 3; i++) {
      const pw = randomPassword();
      const port = await vncap.gwmRequest({ port: testvnc.port, password: pw, ws: false });
      const tap = await startTap(port);
      taps.push(tap);
      await vncdoCapture(tap.port, pw, `vncdo-measure-${i}`);
      const [rec] = tap.records;
      assert.ok(rec.serverFirst >= SILENCE_MS - 5, `vncap spoke after ${rec.serverFirst} ms`);
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
