// Helpers for the fleet tests: several spawned mailfront processes (one per
// instance, each data plane with its own ticket keys, as in a real fleet), a TLS
// client that reports session reuse, and fake backends that read an incoming
// PROXY v2 header. Loopback only; every wait is bounded.
import net from 'node:net';
import tls from 'node:tls';
import type { Mailfront } from '../helpers/mailfront.js';

export const GREETING = '* OK [CAPABILITY IMAP4rev1] fleet backend\r\n';

export interface Resumption {
  reused: boolean;
  /** The newest ticket the server sent on this connection. */
  session: Buffer;
  greeting: string;
  localPort: number;
}

/**
 * One imaps connection: handshake (offering <session> if given), wait for the
 * backend greeting and a ticket, close.
 */
export function handshake(
  port: number,
  ca: string,
  opts: { session?: Buffer; servername?: string; localAddress?: string; timeoutMs?: number } = {},
): Promise<Resumption> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      host: '127.0.0.1',
      port,
      servername: opts.servername ?? 'mail.example.com',
      ca,
      ...(opts.session ? { session: opts.session } : {}),
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
    });
    let data = '';
    let session: Buffer | undefined;
    let done = false;
    const timer = setTimeout(() => finish(new Error(`handshake to ${port}: no greeting and ticket within ${opts.timeoutMs ?? 5000} ms; read ${JSON.stringify(data)}`)), opts.timeoutMs ?? 5000);
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) {
        s.destroy();
        return reject(err);
      }
      resolve({ reused: s.isSessionReused(), session: (session ?? opts.session)!, greeting: data, localPort: s.localPort ?? 0 });
      s.end();
    };
    // A full handshake always brings a ticket (before the greeting); a resumed
    // one need not bring a new one.
    const check = () => {
      if (data.includes('\r\n') && (session || s.isSessionReused())) finish();
    };
    s.setEncoding('latin1');
    s.on('session', (t: Buffer) => {
      session = t;
      check();
    });
    s.on('data', (d: string) => {
      data += d;
      check();
    });
    s.on('error', (e) => finish(e));
    s.on('close', () => finish(new Error(`connection to ${port} closed; read ${JSON.stringify(data)}`)));
  });
}

/** A backend that greets at once. */
export async function greetingBackend(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.on('end', () => s.end());
    s.write(GREETING);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

export interface ProxyV2Seen {
  command: 'PROXY' | 'LOCAL';
  /** "ip:port" of the source and destination the header carried (TCP4/TCP6). */
  src?: string;
  dst?: string;
}

/**
 * A backend configured with proxy_protocol: v2 in mailfront: reads the v2
 * header (refusing anything else), records it, then greets.
 */
export async function proxyV2Backend(): Promise<{ port: number; seen: ProxyV2Seen[]; errors: string[]; close(): Promise<void> }> {
  const seen: ProxyV2Seen[] = [];
  const errors: string[] = [];
  const sockets = new Set<net.Socket>();
  const SIG = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.on('end', () => s.end());
    let buf = Buffer.alloc(0);
    let greeted = false;
    s.on('data', (d: Buffer) => {
      if (greeted) return;
      buf = Buffer.concat([buf, d]);
      if (buf.length < 16) return;
      if (!buf.subarray(0, 12).equals(SIG) || buf[12]! >> 4 !== 2) {
        errors.push(`no PROXY v2 header: ${buf.subarray(0, 16).toString('hex')}`);
        return void s.destroy();
      }
      const len = buf.readUInt16BE(14);
      if (buf.length < 16 + len) return;
      const body = buf.subarray(16, 16 + len);
      const cmd = buf[12]! & 0x0f;
      const fam = buf[13]!;
      const rec: ProxyV2Seen = { command: cmd === 1 ? 'PROXY' : 'LOCAL' };
      if (cmd === 1 && fam === 0x11) {
        const ip = (o: number) => [...body.subarray(o, o + 4)].join('.');
        rec.src = `${ip(0)}:${body.readUInt16BE(8)}`;
        rec.dst = `${ip(4)}:${body.readUInt16BE(10)}`;
      } else if (cmd === 1 && fam === 0x21) {
        // Uncompressed groups: enough to compare in a test.
        const ip = (o: number) => [...Array(8)].map((_, i) => body.readUInt16BE(o + 2 * i).toString(16)).join(':');
        rec.src = `[${ip(0)}]:${body.readUInt16BE(32)}`;
        rec.dst = `[${ip(16)}]:${body.readUInt16BE(34)}`;
      }
      seen.push(rec);
      greeted = true;
      s.write(GREETING);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    seen,
    errors,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** SIGHUP, then the "reloaded" (resolves true) or "reload failed" (false) line that follows it. */
export async function reload(mf: Mailfront, timeoutMs = 15_000): Promise<{ ok: boolean; line: Record<string, unknown> }> {
  const from = mf.lines.length;
  mf.signal('SIGHUP');
  const line = await mf.waitForLog((l) => l.msg === 'reloaded' || l.msg === 'reload failed: still serving the previous configuration', timeoutMs, from);
  return { ok: line.msg === 'reloaded', line: line as unknown as Record<string, unknown> };
}

export { within } from '../native/harness.js';
