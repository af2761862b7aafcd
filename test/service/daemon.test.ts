// `mailfront run` as a daemon: the sd_notify protocol on a real NOTIFY_SOCKET,
// socket activation through systemd-socket-activate, /metrics matching the
// connections made, and a SIGTERM drain that lets an open transfer finish.
// The backend is a small greeting/echo server: Cyrus is covered in test/e2e.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issue, makeCA, makeLetsEncryptTree, renewLineage, sha1Signed, type CA } from '../helpers/pki.js';

const CLI = path.resolve(__dirname, '../../dist/cli.js');
let tmp: string;
let ca: CA;
let backend: net.Server;
let backendPort: number;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function writeConfig(name: string, imapsListen: string[], metricsPort: number, letsencrypt = path.join(tmp, 'le')): string {
  const file = path.join(tmp, `${name}.yaml`);
  writeFileSync(
    file,
    `certificates: {letsencrypt: [${letsencrypt}], default: mail.example.com}
listeners:
  - {name: imaps, protocol: imaps, listen: [${imapsListen.map((a) => `"${a}"`).join(', ')}], backend: be}
backends:
  be: {servers: ["127.0.0.1:${backendPort}"]}
timeouts: {drain: 5s}
workers: 1
metrics: {listen: "127.0.0.1:${metricsPort}"}
`,
  );
  return file;
}

interface Daemon {
  child: ChildProcess;
  lines: string[];
  waitFor(re: RegExp, ms?: number): Promise<string>;
  exited: Promise<number | null>;
}

function launch(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Daemon {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  const onData = (d: Buffer) => {
    for (const line of String(d).split('\n').filter(Boolean)) {
      lines.push(line);
      for (const w of [...waiters]) if (w.re.test(line)) (waiters.splice(waiters.indexOf(w), 1), w.resolve(line));
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    lines,
    exited,
    waitFor(re, ms = 15_000) {
      const hit = lines.find((l) => re.test(l));
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`timed out waiting for ${re}; output:\n${lines.join('\n')}`)), ms);
        waiters.push({ re, resolve: (l) => (clearTimeout(t), resolve(l)) });
      });
    },
  };
}

/** TLS to the imaps listener; resolves with the greeting and the open socket. */
function connect(port: number, servername = 'mail.example.com'): Promise<{ socket: tls.TLSSocket; greeting: string }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, ca: ca.rootPem }, () => {
      socket.once('data', (d) => resolve({ socket, greeting: String(d) }));
    });
    socket.once('error', reject);
  });
}

beforeAll(async () => {
  tmp = mkdtempSync('/tmp/mf-daemon-');
  ca = makeCA(path.join(tmp, 'ca'));
  makeLetsEncryptTree(path.join(tmp, 'le'), {
    lineage: issue(ca, { names: ['mail.example.com'], dir: path.join(tmp, 'leaf') }),
  });
  // Greets like an IMAP server; "SEND n" streams n bytes of a known pattern, slowly.
  backend = net.createServer((s) => {
    s.write('* OK test backend ready\r\n');
    s.on('data', (d) => {
      const m = /^SEND (\d+)/.exec(String(d));
      if (!m) return void s.write(d);
      let left = Number(m[1]);
      const chunk = Buffer.alloc(64 * 1024, 'x');
      const tick = setInterval(() => {
        const n = Math.min(left, chunk.length);
        s.write(chunk.subarray(0, n));
        left -= n;
        if (left === 0) clearInterval(tick);
      }, 20);
      s.on('close', () => clearInterval(tick));
    });
  });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', () => r()));
  backendPort = (backend.address() as net.AddressInfo).port;
});

afterAll(async () => {
  await new Promise((r) => backend.close(r));
  rmSync(tmp, { recursive: true, force: true });
});

describe('mailfront run', () => {
  it('speaks sd_notify on a real NOTIFY_SOCKET: READY, RELOADING with MONOTONIC_USEC, READY, STOPPING', async () => {
    const sock = path.join(tmp, 'notify.sock');
    // A datagram listener, like systemd's: python3 prints each message as one JSON line.
    const listener = launch('python3', [
      '-u',
      '-c',
      `import socket,json,sys
s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM); s.bind(sys.argv[1]); print(json.dumps("LISTENING"))
while True:
  print(json.dumps(s.recv(4096).decode()))`,
      sock,
    ]);
    await listener.waitFor(/LISTENING/);
    const port = await freePort();
    const d = launch(process.execPath, [CLI, 'run', '--config', writeConfig('notify', [`127.0.0.1:${port}`], await freePort())], {
      NOTIFY_SOCKET: sock,
    });
    try {
      await d.waitFor(/mailfront ready/);
      await listener.waitFor(/READY=1/);
      d.child.kill('SIGHUP');
      const reloading = await listener.waitFor(/RELOADING=1/);
      expect(reloading).toMatch(/MONOTONIC_USEC=\d+/);
      await d.waitFor(/"msg":"reloaded"/);
      // The reload ends with a second READY=1, after the RELOADING=1.
      await listener.waitFor(/RELOADING=1[^]*$/);
      const deadline = Date.now() + 5000;
      const after = () => listener.lines.slice(listener.lines.findIndex((l) => l.includes('RELOADING=1')));
      while (!after().some((l) => l.includes('READY=1')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(after().filter((l) => l.includes('READY=1'))).toHaveLength(1);
      d.child.kill('SIGTERM');
      await listener.waitFor(/STOPPING=1/);
      expect(await d.exited).toBe(0);
    } finally {
      d.child.kill('SIGKILL');
      listener.child.kill('SIGKILL');
    }
  });

  it('starts, serves and stops with 32 open files at most (a low LimitNOFILE=), check too', async () => {
    const port = await freePort();
    const config = writeConfig('nofile', [`127.0.0.1:${port}`], await freePort());
    const limited = (cmd: string) => launch('prlimit', ['--nofile=32:32', process.execPath, CLI, cmd, '--config', config]);
    const check = limited('check');
    expect(await check.exited, check.lines.join('\n')).toBe(0);
    const d = limited('run');
    try {
      await d.waitFor(/mailfront ready/);
      const { socket, greeting } = await connect(port);
      expect(greeting).toBe('* OK test backend ready\r\n');
      socket.destroy();
      d.child.kill('SIGTERM');
      expect(await d.exited).toBe(0);
      expect(d.lines.join('\n')).not.toMatch(/EMFILE/);
    } finally {
      d.child.kill('SIGKILL');
    }
  });

  it('serves sockets passed by systemd-socket-activate (LISTEN_FDS, LISTEN_FDNAMES)', async () => {
    const port = await freePort();
    // The config's own address is not bound: the fd named "imaps" is used instead.
    const config = writeConfig('activate', ['127.0.0.1:1'], await freePort());
    const d = launch('systemd-socket-activate', ['-l', `127.0.0.1:${port}`, '--fdname=imaps', process.execPath, CLI, 'run', '--config', config]);
    try {
      // systemd-socket-activate starts the service on the first connection.
      await d.waitFor(/Listening on/);
      const { socket, greeting } = await connect(port);
      expect(greeting).toBe('* OK test backend ready\r\n');
      expect(socket.getPeerCertificate().subjectaltname).toBe('DNS:mail.example.com');
      socket.end();
      const ready = await d.waitFor(/mailfront ready/);
      expect(ready).toContain(`127.0.0.1:${port}`);
    } finally {
      d.child.kill('SIGTERM');
      await d.exited;
    }
  });

  it('a reload that adds a listener keeps the running ones on their own backends (a restart applies the new one)', async () => {
    // A second backend whose name sorts first: backend indexes shift in the new snapshot.
    const other = net.createServer((s) => s.end('+OK the other backend\r\n'));
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', () => r()));
    const port = await freePort();
    const config = writeConfig('grow', [`127.0.0.1:${port}`], await freePort());
    const d = launch(process.execPath, [CLI, 'run', '--config', config]);
    try {
      await d.waitFor(/mailfront ready/);
      const grown = readFileSync(config, 'utf8')
        .replace('backends:\n', `backends:\n  aaa: {servers: ["127.0.0.1:${(other.address() as net.AddressInfo).port}"]}\n`)
        .replace('listeners:\n', `listeners:\n  - {name: pop3s, protocol: pop3s, listen: ["127.0.0.1:${await freePort()}"], backend: aaa}\n`);
      writeFileSync(config, grown);
      d.child.kill('SIGHUP');
      await d.waitFor(/listeners or workers changed/);
      await d.waitFor(/"msg":"reloaded"/);
      const { socket, greeting } = await connect(port);
      expect(greeting).toBe('* OK test backend ready\r\n');
      socket.end();
    } finally {
      d.child.kill('SIGTERM');
      await d.exited;
      await new Promise((r) => other.close(r));
    }
  });

  it('a SHA-1-signed renewal is refused on every runtime (OpenSSL 3.5 would serve it): logged with its path, the previous certificate goes on serving', async () => {
    const le = path.join(tmp, 'le-sha1');
    const leaf = issue(ca, { names: ['mail.example.com'], dir: path.join(tmp, 'leaf-sha1') });
    makeLetsEncryptTree(le, { lineage: leaf });
    const port = await freePort();
    const d = launch(process.execPath, [CLI, 'run', '--config', writeConfig('sha1', [`127.0.0.1:${port}`], await freePort(), le)]);
    try {
      await d.waitFor(/mailfront ready/);
      // Names, key and dates are fine; the signature's digest is not (the check's rule, not OpenSSL 3.0's alone).
      renewLineage(le, 'lineage', sha1Signed(ca, leaf), 2);
      d.child.kill('SIGHUP');
      const refused = JSON.parse(await d.waitFor(/signed with SHA1/));
      expect(refused.level).toBe('error');
      expect(JSON.stringify(refused)).toContain(`in ${path.join(le, 'live', 'lineage', 'fullchain.pem')} is signed with SHA1, 63-bit security`);
      const { socket, greeting } = await connect(port);
      expect(greeting).toBe('* OK test backend ready\r\n');
      expect(socket.getPeerX509Certificate()?.fingerprint256).toBe(new X509Certificate(leaf.certPem).fingerprint256);
      socket.end();
    } finally {
      d.child.kill('SIGTERM');
      await d.exited;
    }
  });

  it('a flood of failed handshakes: 20 warn lines one by one, then one summary line with the rest; metrics count them all', async () => {
    const port = await freePort();
    const metricsPort = await freePort();
    const d = launch(process.execPath, [CLI, 'run', '--config', writeConfig('flood', [`127.0.0.1:${port}`], metricsPort)]);
    try {
      await d.waitFor(/mailfront ready/);
      const N = 60;
      for (let i = 0; i < N; i++) {
        // Not TLS: the handshake fails at once.
        const s = net.connect({ host: '127.0.0.1', port });
        s.on('error', () => {});
        await new Promise<void>((r) => s.once('connect', () => (s.end('GET / HTTP/1.0\r\n\r\n'), s.once('close', () => r()))));
      }
      const closed = () => {
        const m = /^mailfront_connections_closed_total\{listener="imaps",reason="handshake_failed"\} (\d+)$/m;
        return fetch(`http://127.0.0.1:${metricsPort}/metrics`).then(async (r) => Number(m.exec(await r.text())?.[1] ?? 0));
      };
      const deadline = Date.now() + 5000;
      while ((await closed()) < N && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(await closed()).toBe(N);
      d.child.kill('SIGTERM');
      expect(await d.exited).toBe(0);
      const json = d.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(json.filter((l) => l.msg === 'connection closed' && l.reason === 'handshake_failed')).toHaveLength(20);
      // The summary comes at the end of the 10 s interval, or at stop at the latest.
      expect(json.filter((l) => l.suppressed !== undefined)).toEqual([
        expect.objectContaining({ level: 'warn', component: 'conn', reason: 'handshake_failed', suppressed: N - 20 }),
      ]);
    } finally {
      d.child.kill('SIGKILL');
    }
  });

  it('/metrics counts the connections made, and a SIGTERM drain lets an open transfer finish', async () => {
    const port = await freePort();
    const metricsPort = await freePort();
    const d = launch(process.execPath, [CLI, 'run', '--config', writeConfig('drain', [`127.0.0.1:${port}`], metricsPort)]);
    try {
      await d.waitFor(/mailfront ready/);
      for (let i = 0; i < 3; i++) {
        const { socket } = await connect(port);
        await new Promise<void>((r) => socket.end(r));
      }
      await d.waitFor(/"msg":"connection closed"/);
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      expect(text).toMatch(/^mailfront_connections_accepted_total\{listener="imaps"\} 3$/m);
      expect(text).toMatch(/^mailfront_tls_handshakes_total\{listener="imaps"\} 3$/m);
      expect((await fetch(`http://127.0.0.1:${metricsPort}/healthz`)).status).toBe(200);

      // A 2 MiB transfer streamed slowly (~1.5 s) is in flight when SIGTERM arrives.
      const size = 2 * 1024 * 1024;
      const { socket } = await connect(port);
      const hash = createHash('sha256');
      let received = 0;
      const done = new Promise<void>((resolve) => {
        socket.on('data', (b: Buffer) => {
          hash.update(b);
          received += b.length;
          if (received >= size) resolve();
        });
      });
      socket.write(`SEND ${size}\r\n`);
      await new Promise((r) => setTimeout(r, 200));
      d.child.kill('SIGTERM');
      await d.waitFor(/"msg":"draining"/);
      // New connections are refused while draining.
      await expect(connect(port)).rejects.toThrow();
      await done;
      expect(received).toBe(size);
      expect(hash.digest('hex')).toBe(createHash('sha256').update(Buffer.alloc(size, 'x')).digest('hex'));
      socket.end();
      expect(await d.exited).toBe(0);
    } finally {
      d.child.kill('SIGKILL');
    }
  });
});
