// Helpers for the real-peer interop suite (interop.test.mjs): starting and
// stopping the processes (vncap, testvnc, TigerVNC Xvnc, QEMU's VNC server,
// vncdotool, TigerVNC's viewer under Xvfb), waiting on their log lines,
// ports and screenshots with deadlines, a static HTTP server for noVNC,
// HAProxy in front of vncaps, and
// a byte-transparent TCP tap that measures when a viewer first speaks. Not a test framework: every wait here has a timeout
// and fails loudly; nothing sleeps to synchronise. Loopback only.
//
// DESIGN.md: "Entry points" (sniffing: a native viewer waits for the server
// to speak first) and "Sessions".

import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(HERE, '..', '..');
const TARGET = process.env.CARGO_TARGET_DIR || path.join(ROOT, 'target');
export const VNCAP = process.env.VNCAP_BIN || path.join(TARGET, 'debug', 'vncap');
export const TESTVNC = process.env.TESTVNC_BIN || path.join(TARGET, 'debug', 'testvnc');
export const NOVNC = process.env.NOVNC_DIR || '/usr/share/novnc';
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** Longest any single wait lasts before the test fails. */
export const PATIENCE_MS = 20_000;

/** A private scratch directory for this run (screenshots, captures, password files). */
export const SCRATCH = fs.mkdtempSync(path.join(os.tmpdir(), 'vncap-interop-'));

const children = new Set();
/** Every process started in this run (running or not), for failure logs. */
const everyProc = [];

/**
 * Writes every process's output into SCRATCH/logs/ (for a failed run);
 * returns the file paths.
 */
export function dumpLogs() {
  const dir = path.join(SCRATCH, 'logs');
  fs.mkdirSync(dir, { recursive: true });
  const names = new Map();
  return everyProc.filter((p) => p.name !== 'vapclient').map((p) => {
    const base = p.name.replace(/[^A-Za-z0-9._-]+/g, '_');
    const n = (names.get(base) || 0) + 1;
    names.set(base, n);
    const file = path.join(dir, `${base}${n > 1 ? `-${n}` : ''}.log`);
    fs.writeFileSync(file, p.lines.map((l) => l.line).join('\n') + '\n');
    return file;
  });
}

/** Kills every process this module started (SIGTERM, then SIGKILL). */
export async function killAll() {
  const waits = [];
  for (const p of children) {
    waits.push(p.stop());
  }
  await Promise.all(waits);
}

process.on('exit', () => {
  for (const p of children) {
    try { process.kill(p.child.pid, 'SIGKILL'); } catch { /* gone */ }
  }
});

/** Rejects after `ms` with `what` unless `promise` settles first. */
export function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * A started process whose stdout and stderr lines are kept (`lines`) and can
 * be waited on (`waitLine`). Stopped by `stop()` or by `killAll()`.
 */
export class Proc {
  constructor(name, cmd, args, opts = {}) {
    this.name = name;
    this.lines = [];
    this.waiters = [];
    this.exited = null;
    this.child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], ...opts });
    children.add(this);
    everyProc.push(this);
    this.exitPromise = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exited = { code, signal };
        children.delete(this);
        for (const w of this.waiters) w.fail(new Error(`${name} exited (${code ?? signal}) while waiting for ${w.what}\n${this.tail()}`));
        this.waiters = [];
        resolve(this.exited);
      });
      this.child.on('error', (e) => {
        this.exited = { code: null, signal: String(e) };
        children.delete(this);
        for (const w of this.waiters) w.fail(e);
        this.waiters = [];
        resolve(this.exited);
      });
    });
    for (const stream of [this.child.stdout, this.child.stderr]) {
      let partial = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk) => {
        partial += chunk;
        const parts = partial.split('\n');
        partial = parts.pop();
        for (const line of parts) this.push(line);
      });
    }
  }

  push(line) {
    const at = performance.now();
    this.lines.push({ at, line });
    if (process.env.INTEROP_VERBOSE) process.stderr.write(`  ${this.name} | ${line}\n`);
    this.waiters = this.waiters.filter((w) => {
      if (w.re.test(line)) { w.done({ at, line }); return false; }
      return true;
    });
  }

  /** The last `n` lines, for error messages. */
  tail(n = 30) {
    return this.lines.slice(-n).map((l) => `  ${this.name} | ${l.line}`).join('\n');
  }

  /** Waits for a line matching `re` (lines already seen count); returns `{at, line}`. */
  waitLine(re, ms = PATIENCE_MS, since = 0) {
    const seen = this.lines.find((l) => l.at >= since && re.test(l.line));
    if (seen) return Promise.resolve(seen);
    if (this.exited) return Promise.reject(new Error(`${this.name} has exited; no line ${re}\n${this.tail()}`));
    return within(ms, `${this.name}: a line matching ${re}\n${this.tail()}`, new Promise((done, fail) => {
      this.waiters.push({ re, done, fail, what: String(re) });
    }));
  }

  /** SIGTERM, then SIGKILL if it is still there after 5 s; resolves on exit. */
  async stop() {
    if (this.exited) return this.exited;
    try { this.child.kill('SIGTERM'); } catch { /* gone */ }
    const timer = setTimeout(() => { try { this.child.kill('SIGKILL'); } catch { /* gone */ } }, 5000);
    const result = await this.exitPromise;
    clearTimeout(timer);
    return result;
  }
}

/** A TCP port free on 127.0.0.1 right now (the OS picks it). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * Tries a TCP connection to 127.0.0.1:`port`; resolves with 'refused' (no
 * listener), 'connected' (with who answered, if it spoke within 1 s), or the
 * error code.
 */
export function connectOutcome(port) {
  return within(PATIENCE_MS, `connect to ${port}`, new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => {
      const local = s.localPort;
      const timer = setTimeout(() => { s.destroy(); resolve(`connected from ${local}, silent`); }, 1000);
      s.once('data', (d) => { clearTimeout(timer); s.destroy(); resolve(`connected from ${local}: ${JSON.stringify(d.subarray(0, 40).toString('latin1'))}`); });
      s.once('end', () => { clearTimeout(timer); s.destroy(); resolve(`connected from ${local}, closed`); });
    });
    s.on('error', (e) => resolve(e.code === 'ECONNREFUSED' ? 'refused' : e.code));
  }));
}

// ---------------------------------------------------------------- vncap

/**
 * A private block of 64 entry ports for one run, picked at random in
 * 10000-19999: below the kernel's ephemeral range and apart from the blocks
 * other suites on a shared machine use (vncap's default 7000-8000, the cargo
 * end-to-end tests' 20000-29606, the benchmark's 30100 and up), so a port
 * this suite expects closed is not someone else's open one.
 */
export function privatePortBlock() {
  const base = 10000 + 64 * (randomBytes(2).readUInt16BE(0) % 156);
  return `${base}-${base + 63}`;
}

/** `vncap serve` on loopback, control port picked by the OS, debug log. */
export class Vncap extends Proc {
  static async start({ backendPassword, ports = privatePortBlock(), extra = [] } = {}) {
    const args = ['serve', '--control', '127.0.0.1:0', '--listen', '127.0.0.1', '--ports', ports, '--log-level', 'debug'];
    if (backendPassword !== undefined) {
      // One file per daemon: two started at once must not truncate each other's.
      const file = path.join(SCRATCH, `cluster-password-${randomBytes(4).toString('hex')}`);
      fs.writeFileSync(file, `${backendPassword}\n`, { mode: 0o600 });
      args.push('--backend-password-file', file);
    }
    const d = new Vncap('vncap', VNCAP, [...args, ...extra]);
    const { line } = await d.waitLine(/ready: control on /);
    const m = /control on ([0-9.]+):(\d+)/.exec(line);
    if (!m) throw new Error(`no control address in ${JSON.stringify(line)}`);
    d.control = { host: m[1], port: Number(m[2]) };
    return d;
  }

  /** Sends one raw control request line; resolves with the whole reply. */
  controlRaw(request) {
    return within(PATIENCE_MS, 'control reply', new Promise((resolve, reject) => {
      const s = net.connect(this.control.port, this.control.host);
      let reply = '';
      s.setEncoding('utf8');
      s.on('connect', () => s.end(request));
      s.on('data', (d) => { reply += d; });
      s.on('end', () => resolve(reply));
      s.on('error', reject);
    }));
  }

  /**
   * Asks for a console as Ganeti Web Manager does, through vapclient.py (a
   * byte-exact stand-in for GWM's vapclient: `json.dumps(request) + "\r\n"`,
   * `recv(1024).strip()`, a reply starting "FAIL" is a failure); resolves
   * with the entry port. `timeout`: seconds the ticket waits (else vncap's
   * default); `host`: the request's daddr; `tls`: true, false, or null for
   * no "tls" key at all.
   */
  async gwmRequest({ port, password, ws, tls = false, timeout, host = '127.0.0.1' }) {
    const args = [path.join(HERE, 'vapclient.py'), `${this.control.host}:${this.control.port}`,
      host, String(port), password, ws ? 'ws' : 'plain', tls === null ? 'either' : tls ? 'tls' : 'notls'];
    if (timeout !== undefined) args.push(String(timeout));
    const p = new Proc('vapclient', 'python3', args);
    const exit = await within(PATIENCE_MS, 'vapclient.py', p.exitPromise);
    const out = p.lines.map((l) => l.line).join('\n').trim();
    if (exit.code !== 0) throw new Error(`vapclient.py: ${out}`);
    const entry = Number(out);
    if (!Number.isInteger(entry) || entry <= 0) throw new Error(`expected a port, got ${JSON.stringify(out)}`);
    return entry;
  }
}

/**
 * Debian's HAProxy (`haproxy -W -db`: master-worker, in the foreground) with
 * the configuration text `config`; resolves once it says it loaded.
 */
export async function startHaproxy(config) {
  const file = path.join(SCRATCH, `haproxy-${randomBytes(4).toString('hex')}.cfg`);
  fs.writeFileSync(file, config);
  const p = new Proc('haproxy', 'haproxy', ['-W', '-db', '-f', file]);
  await p.waitLine(/Loading success/);
  return p;
}

// ---------------------------------------------------------------- backends

/** The project's test backend (colour bars), on a port the OS picks. */
export async function startTestvnc({ password } = {}) {
  const auth = password === undefined ? ['--none'] : ['--password', password];
  const p = new Proc('testvnc', TESTVNC, ['--listen', '127.0.0.1:0', ...auth]);
  const { line } = await p.waitLine(/testvnc listening on /);
  p.port = Number(/:(\d+)\s*$/.exec(line)[1]);
  p.geometry = { width: 640, height: 480 };
  return p;
}

let nextDisplay = 71;

/**
 * TigerVNC's Xvnc on display :71-:89 and a free RFB port. With `password`:
 * VNC authentication (password file made by `vncpasswd -f`); without:
 * `-SecurityTypes None`. The root window is the classic X weave (`-retro`),
 * or, with `solid` ('#rrggbb'), painted that one colour by `xsetroot -solid`
 * (resolves once xsetroot has exited, so the picture is there).
 */
export async function startXvnc({ password, solid, width = 320, height = 240 }) {
  const security = ['-SecurityTypes', 'None'];
  if (password !== undefined) {
    const pwFile = path.join(SCRATCH, 'xvnc-passwd');
    const made = spawnSync('vncpasswd', ['-f'], { input: `${password}\n` });
    if (made.status !== 0) throw new Error(`vncpasswd -f: ${made.stderr}`);
    fs.writeFileSync(pwFile, made.stdout, { mode: 0o600 });
    security.splice(0, 2, '-SecurityTypes', 'VncAuth', '-PasswordFile', pwFile);
  }
  let lastError;
  while (nextDisplay <= 89) {
    const display = nextDisplay++; // claimed before any await: starts may run concurrently
    if (fs.existsSync(`/tmp/.X${display}-lock`)) continue;
    const port = await freePort();
    const p = new Proc(`Xvnc:${display}`, 'Xvnc', [
      `:${display}`, '-rfbport', String(port), '-interface', '127.0.0.1', '-nolisten', 'tcp',
      ...security, '-geometry', `${width}x${height}`, '-depth', '24',
      ...(solid ? [] : ['-retro']), '-desktop', `vncap-interop-${display}`,
    ]);
    try {
      await p.waitLine(/Listening for VNC connections/);
      p.port = port;
      p.display = display;
      p.geometry = { width, height };
      if (solid) {
        const paint = new Proc(`xsetroot:${display}`, 'xsetroot', ['-display', `:${display}`, '-solid', solid]);
        const exit = await within(PATIENCE_MS, 'xsetroot', paint.exitPromise);
        if (exit.code !== 0) throw new Error(`xsetroot -solid ${solid} exited ${exit.code ?? exit.signal}\n${paint.tail()}`);
      }
      return p;
    } catch (e) {
      lastError = e;
      await p.stop();
    }
  }
  throw new Error(`no Xvnc display in :71-:89 would start: ${lastError}`);
}

/**
 * QEMU's VNC server with no guest (`-machine none`): it shows "This VM has
 * no graphic display device." in grey on black, 640x480. With a password it
 * comes from a secret object (`password-secret`, QEMU >= 7.0). `tls`:
 * `{dir, verifyPeer}` for `tls-creds-x509` from an x509Pki() node directory,
 * or `{anon: true}` for `tls-creds-anon` (VeNCrypt). Ready when QMP
 * answers `query-vnc` with the port (the VNC server is set up before the
 * monitor runs).
 */
export async function startQemu({ password, tls } = {}) {
  const port = await freePort();
  if (port < 5900) throw new Error(`free port ${port} is below QEMU's display base 5900`);
  const display = port - 5900;
  const args = ['-machine', 'none', '-nodefaults', '-display', 'none', '-qmp', 'stdio'];
  let vncArg = `127.0.0.1:${display}`;
  if (password !== undefined) {
    args.push('-object', `secret,id=vncpw,data=${password}`);
    vncArg += ',password-secret=vncpw';
  }
  // VeNCrypt as Ganeti starts it: vnc_tls + vnc_x509_path (+ vnc_x509_verify),
  // or vnc_tls alone (anonymous TLS).
  if (tls?.anon) {
    args.push('-object', 'tls-creds-anon,id=vnctls0,endpoint=server');
    vncArg += ',tls-creds=vnctls0';
  } else if (tls) {
    args.push('-object', `tls-creds-x509,id=vnctls0,endpoint=server,dir=${tls.dir},verify-peer=${tls.verifyPeer ? 'yes' : 'no'}`);
    vncArg += ',tls-creds=vnctls0';
  }
  args.push('-vnc', vncArg);
  const p = new Proc(`qemu:${display}`, 'qemu-system-x86_64', args);
  await p.waitLine(/"QMP"/);
  p.child.stdin.write('{"execute": "qmp_capabilities"}\n{"execute": "query-vnc"}\n');
  const { line } = await p.waitLine(/"service"/);
  const vnc = JSON.parse(line).return;
  if (!vnc.enabled || Number(vnc.service) !== port) throw new Error(`query-vnc: ${line}`);
  p.port = port;
  p.geometry = { width: 640, height: 480 };
  return p;
}

// ---------------------------------------------------------------- viewers

/**
 * vncdotool captures the screen through `port` with `password`; resolves
 * with the PNG's statistics from pngstat.py, or rejects with its output.
 */
export async function vncdoCapture(port, password, name) {
  const png = path.join(SCRATCH, `${name}.png`);
  const p = new Proc(`vncdo ${name}`, 'vncdo', ['-s', `127.0.0.1::${port}`, '-p', password, '--timeout', '15', 'capture', png],
    { env: { ...process.env, PYTHONWARNINGS: 'ignore' } });
  const exit = await within(PATIENCE_MS, `vncdo capture via port ${port}`, p.exitPromise);
  if (exit.code !== 0) throw new Error(`vncdo exited ${exit.code ?? exit.signal}\n${p.tail()}`);
  return { png, ...pngStat(png) };
}

/** vncdotool against `port`; resolves with its exit and output (for failures). */
export async function vncdoFails(port, password) {
  const out = path.join(SCRATCH, 'never.png');
  const p = new Proc('vncdo', 'vncdo', ['-s', `127.0.0.1::${port}`, '-p', password, '--timeout', '10', 'capture', out],
    { env: { ...process.env, PYTHONWARNINGS: 'ignore' } });
  const exit = await within(PATIENCE_MS, `vncdo via port ${port}`, p.exitPromise);
  return { exit, output: p.lines.map((l) => l.line).join('\n') };
}

/**
 * A raw RFB 3.8 viewer that picks security type `type` whatever it is
 * offered, to see vncap's answer: resolves with the server's version, the
 * types it offered, and its SecurityResult and reason (or null if it
 * closed without one).
 */
export function rfbChooseType(port, type) {
  return within(PATIENCE_MS, `RFB security type ${type} via port ${port}`, new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let got = Buffer.alloc(0);
    let step = 'version';
    s.on('data', (d) => {
      got = Buffer.concat([got, d]);
      if (step === 'version' && got.length >= 12) {
        s.write('RFB 003.008\n');
        step = 'types';
      }
      if (step === 'types' && got.length >= 13 && got.length >= 13 + got[12]) {
        s.write(Buffer.from([type]));
        step = 'result';
      }
    });
    s.on('error', reject);
    s.on('close', () => {
      const version = got.subarray(0, 12).toString('latin1');
      const n = got[12] ?? 0;
      const types = [...got.subarray(13, 13 + n)];
      const rest = got.subarray(13 + n);
      const result = rest.length >= 4 ? rest.readUInt32BE(0) : null;
      const reason = rest.length >= 8 ? rest.subarray(8, 8 + rest.readUInt32BE(4)).toString('utf8') : null;
      resolve({ version, types, result, reason });
    });
  }));
}

/**
 * Xvfb on a display number it picks itself (`-displayfd`: the first free
 * one, claimed by its lock file, so suites running at once cannot collide);
 * resolves once it takes clients (it writes the number then), with
 * `display` (':N').
 */
export async function startXvfb({ width = 640, height = 480 } = {}) {
  const p = new Proc('Xvfb', 'Xvfb', ['-displayfd', '3', '-screen', '0', `${width}x${height}x24`, '-nolisten', 'tcp'],
    { stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
  const n = await within(PATIENCE_MS, 'Xvfb -displayfd', new Promise((resolve, reject) => {
    let got = '';
    p.child.stdio[3].setEncoding('utf8');
    p.child.stdio[3].on('data', (d) => {
      got += d;
      if (got.includes('\n')) resolve(Number(got.trim()));
    });
    p.exitPromise.then((e) => reject(new Error(`Xvfb exited (${e.code ?? e.signal}) before it had a display\n${p.tail()}`)));
  }));
  if (!Number.isInteger(n)) throw new Error(`Xvfb -displayfd wrote ${n}`);
  p.name = `Xvfb:${n}`;
  p.display = `:${n}`;
  return p;
}

/**
 * TigerVNC's viewer on the X display `display`, to 127.0.0.1::`port` with
 * `-SecurityTypes` `security`, `-X509CA` `ca` and the password in a file
 * made by `vncpasswd -f`. No dialogs (a fatal error exits), HOME in the
 * scratch directory (its ~/.vnc), and the security negotiation in its log.
 */
export function startTigerViewer({ display, port, password, ca, security = 'X509Vnc' }) {
  const home = fs.mkdtempSync(path.join(SCRATCH, 'tigervnc-home-'));
  const pwFile = path.join(home, 'passwd');
  const made = spawnSync('vncpasswd', ['-f'], { input: `${password}\n` });
  if (made.status !== 0) throw new Error(`vncpasswd -f: ${made.stderr}`);
  fs.writeFileSync(pwFile, made.stdout, { mode: 0o600 });
  return new Proc(`xtigervncviewer ${port}`, 'xtigervncviewer', [
    '-display', display, '-SecurityTypes', security, '-X509CA', ca, '-passwd', pwFile,
    '-AlertOnFatalError=0', '-ReconnectOnError=0',
    '-Log', '*:stderr:30,CConnection:stderr:100,CVeNCrypt:stderr:100,TLS:stderr:100',
    `127.0.0.1::${port}`,
  ], { env: { ...process.env, HOME: home } });
}

/** Saves the root window of the X display `display` as the PNG `file` (xshot.py). */
export function xshot(display, file) {
  return within(PATIENCE_MS, `xshot.py ${display}`, new Promise((resolve, reject) => {
    execFile('python3', [path.join(HERE, 'xshot.py'), display, file], (err, _out, stderr) => {
      if (err) reject(new Error(`xshot.py ${display}: ${stderr || err.message}`));
      else resolve(file);
    });
  }));
}

/**
 * Screenshots `display` into SCRATCH/`name`.png until `check` holds for its
 * pngStat, at most `ms` and while `viewer` runs (a try every 100 ms: the
 * picture has no event to wait on); resolves with the statistics, the file
 * and the number of tries; fails with what the screen last showed.
 */
export async function waitScreen(display, name, check, { ms = PATIENCE_MS, viewer } = {}) {
  const png = path.join(SCRATCH, `${name}.png`);
  const deadline = performance.now() + ms;
  for (let tries = 1; ; tries++) {
    await xshot(display, png);
    const stat = pngStat(png);
    if (check(stat)) return { png, tries, ...stat };
    const last = `last seen (${png}): ${JSON.stringify(stat.colors.slice(0, 6))}`;
    if (viewer?.exited) throw new Error(`${viewer.name} exited (${viewer.exited.code ?? viewer.exited.signal}); ${last}\n${viewer.tail()}`);
    if (performance.now() > deadline) throw new Error(`${display} never showed what was wanted in ${ms} ms; ${last}`);
    await new Promise((resolve) => { setTimeout(resolve, 100); });
  }
}

/** Size, colour histogram and sample pixels of a PNG (Pillow, which vncdotool needs anyway). */
export function pngStat(file, points = []) {
  const r = spawnSync('python3', [path.join(HERE, 'pngstat.py'), file, JSON.stringify(points)], { encoding: 'utf8', timeout: PATIENCE_MS });
  if (r.status !== 0) throw new Error(`pngstat.py ${file}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

// ---------------------------------------------------------------- noVNC

/**
 * The noVNC builds the suite runs: Debian's `novnc` (1.3, its own vnc.html
 * UI) and npm's `@novnc/novnc` (pinned in package.json; ES modules, no UI:
 * `novnc-page.html` here drives its `core/rfb.js`). Each is served from its
 * own HTTP root.
 */
export const NOVNC_BUILDS = {
  debian: { root: NOVNC, page: 'vnc.html', version: debianNoVncVersion() },
  npm: {
    root: path.join(HERE, 'node_modules', '@novnc', 'novnc'),
    page: 'novnc-page.html',
    version: JSON.parse(fs.readFileSync(path.join(HERE, 'node_modules', '@novnc', 'novnc', 'package.json'), 'utf8')).version,
  },
};

function debianNoVncVersion() {
  try {
    return JSON.parse(fs.readFileSync(path.join(NOVNC, 'package.json'), 'utf8')).version;
  } catch {
    const r = spawnSync('dpkg-query', ['-W', '-f', '${Version}', 'novnc'], { encoding: 'utf8' });
    return r.status === 0 ? r.stdout.trim() : 'unknown';
  }
}

/**
 * Serves one noVNC build's static files on 127.0.0.1 (port picked by the
 * OS), plus this directory's novnc-page.html.
 */
export async function serveNoVnc(build = NOVNC_BUILDS.debian) {
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon', '.json': 'application/json', '.ogg': 'audio/ogg', '.mp3': 'audio/mpeg' };
  const root = fs.realpathSync(build.root);
  const server = http.createServer((req, res) => {
    const rel = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    let file = rel === '/novnc-page.html' ? path.join(HERE, 'novnc-page.html') : path.join(root, path.normalize(rel));
    try {
      file = fs.realpathSync(file); // Debian symlinks vendor/ into /usr/share/javascript
    } catch {
      res.writeHead(404).end();
      return;
    }
    fs.readFile(file, (err, data) => {
      if (err) { res.writeHead(404).end(); return; }
      res.writeHead(200, { 'content-type': types[path.extname(file)] || 'application/octet-stream' }).end(data);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  server.base = `http://127.0.0.1:${server.address().port}`;
  server.build = build;
  return server;
}

/**
 * The URL that opens `server`'s noVNC on `entryPort`: noVNC 1.3's own URL
 * parameters (app/ui.js: host, port, path, password, autoconnect; encrypt=1
 * for wss), which novnc-page.html reads too.
 */
export function noVncUrl(server, entryPort, password, { encrypt = false } = {}) {
  const q = new URLSearchParams({ host: '127.0.0.1', port: String(entryPort), path: 'websockify', password, autoconnect: '1', logging: 'warn' });
  if (encrypt) q.set('encrypt', '1');
  return `${server.base}/${server.build.page}?${q}`;
}

/**
 * A self-signed certificate for 127.0.0.1 (openssl, P-256), written into the
 * scratch directory; resolves with the PEM files' paths `{cert, key}`.
 */
export function selfSignedCert() {
  const dir = fs.mkdtempSync(path.join(SCRATCH, 'tls-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  return { cert, key };
}

/**
 * A CA and certificates made with openssl (P-256), in QEMU's
 * `tls-creds-x509` layout (Ganeti's `vnc_x509_path`): `node` holds
 * ca-cert.pem, server-cert.pem (subjectAltName `san`, e.g. `IP:127.0.0.1`)
 * and server-key.pem; `vncap` holds ca-cert.pem, client-cert.pem and
 * client-key.pem (for `--backend-tls-dir`); `caOnly` holds ca-cert.pem alone;
 * `nodeAlt` is a second node directory, its certificate for `altSan`.
 * Resolves with those four directories.
 */
export function x509Pki(name, { san = 'IP:127.0.0.1', altSan = 'DNS:elsewhere.invalid' } = {}) {
  const root = fs.mkdtempSync(path.join(SCRATCH, `pki-${name}-`));
  const dirs = {
    node: path.join(root, 'node'), nodeAlt: path.join(root, 'node-alt'), vncap: path.join(root, 'vncap'), caOnly: path.join(root, 'ca-only'),
  };
  for (const d of Object.values(dirs)) fs.mkdirSync(d);
  const ossl = (args) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const ca = path.join(dirs.node, 'ca-cert.pem');
  const caKey = path.join(root, 'ca-key.pem');
  ossl(['req', '-x509', ...ec, '-keyout', caKey, '-out', ca, '-days', '1', '-subj', `/CN=vncap interop CA ${name}`]);
  const issue = (cn, ext, cert, key) => {
    const csr = path.join(root, `${cn}.csr`);
    const extFile = path.join(root, `${cn}.ext`);
    fs.writeFileSync(extFile, ext);
    ossl(['req', ...ec, '-keyout', key, '-out', csr, '-subj', `/CN=${cn}`]);
    ossl(['x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-CAcreateserial', '-out', cert, '-days', '1', '-extfile', extFile]);
  };
  issue('node', `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`, path.join(dirs.node, 'server-cert.pem'), path.join(dirs.node, 'server-key.pem'));
  issue('vncap', 'extendedKeyUsage=clientAuth\n', path.join(dirs.vncap, 'client-cert.pem'), path.join(dirs.vncap, 'client-key.pem'));
  issue('node-alt', `subjectAltName=${altSan}\nextendedKeyUsage=serverAuth\n`, path.join(dirs.nodeAlt, 'server-cert.pem'), path.join(dirs.nodeAlt, 'server-key.pem'));
  fs.copyFileSync(ca, path.join(dirs.nodeAlt, 'ca-cert.pem'));
  fs.copyFileSync(ca, path.join(dirs.vncap, 'ca-cert.pem'));
  fs.copyFileSync(ca, path.join(dirs.caOnly, 'ca-cert.pem'));
  return dirs;
}

/**
 * Headless Chromium started by us (so it is in our process group and on our
 * kill list, unlike a Playwright-launched one), with a fresh profile and a
 * DevTools port the OS picks; Playwright attaches over CDP. Resolves with
 * `{proc, browser, context}`.
 */
export async function startChromium(playwright) {
  const profile = fs.mkdtempSync(path.join(SCRATCH, 'chromium-profile-'));
  const proc = new Proc('chromium', CHROMIUM, [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    // vncap's wss test serves a self-signed certificate made at test time.
    '--ignore-certificate-errors',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    `--user-data-dir=${profile}`, '--remote-debugging-address=127.0.0.1', '--remote-debugging-port=0',
    '--window-size=800,600', 'about:blank',
  ]);
  const { line } = await proc.waitLine(/DevTools listening on ws:\/\//);
  const endpoint = line.slice(line.indexOf('ws://')).trim();
  const browser = await playwright.connectOverCDP(endpoint, { timeout: PATIENCE_MS });
  const [context] = browser.contexts();
  return { proc, browser, context, close: () => closeChromium(proc, browser) };
}

/** Asks Chromium to quit over CDP and waits for it (SIGTERM/SIGKILL if it will not). */
async function closeChromium(proc, browser) {
  try {
    const session = await browser.newBrowserCDPSession();
    await within(5000, 'CDP Browser.close', session.send('Browser.close').catch(() => {}));
    await within(5000, 'Chromium to exit', proc.exitPromise);
  } catch {
    await proc.stop();
  }
}

// ---------------------------------------------------------------- the tap

/**
 * A byte-transparent TCP relay in front of `target`: for each connection it
 * records (ms after accept) when the viewer sent its first byte and when the
 * server did. Used only to measure; the correctness tests connect directly.
 */
export async function startTap(target) {
  const records = [];
  const server = net.createServer((down) => {
    const rec = { accepted: performance.now(), clientFirst: null, serverFirst: null };
    records.push(rec);
    const up = net.connect(target, '127.0.0.1');
    down.setNoDelay(true);
    up.setNoDelay(true);
    down.on('data', (b) => {
      if (rec.clientFirst === null) { rec.clientFirst = performance.now() - rec.accepted; rec.clientFirstBytes = b.subarray(0, 16).toString('latin1'); }
      up.write(b);
    });
    up.on('data', (b) => {
      if (rec.serverFirst === null) rec.serverFirst = performance.now() - rec.accepted;
      down.write(b);
    });
    down.on('end', () => up.end());
    up.on('end', () => down.end());
    down.on('error', () => up.destroy());
    up.on('error', () => down.destroy());
    down.on('close', () => up.destroy());
    up.on('close', () => down.destroy());
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  server.port = server.address().port;
  server.records = records;
  return server;
}

/** min / median / max of a list of numbers, rounded to 0.1 ms. */
export function summary(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const r = (x) => Math.round(x * 10) / 10;
  return { n: s.length, min: r(s[0]), median: r(s[Math.floor(s.length / 2)]), max: r(s[s.length - 1]) };
}

/** A random 8-character password of letters and digits (what vncap's tickets use). */
export function randomPassword() {
  const abc = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789';
  let s = '';
  for (const b of randomBytes(8)) s += abc[b % abc.length];
  return s;
}
