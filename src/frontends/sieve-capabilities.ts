// ManageSieve (RFC 5804) capabilities that mailfront advertises before TLS,
// made from what the Cyrus backend (timsieved) says in its greeting.
//
// Before STARTTLS mailfront speaks for the backend. The capability lines are
// the backend's own, with two changes:
// - "SASL" becomes `"SASL" ""`: mailfront refuses authentication before TLS,
//   and RFC 5804 section 1.7 allows an empty SASL list exactly when STARTTLS
//   is advertised ("This list can be empty if and only if STARTTLS is also
//   advertised"). Clients then negotiate TLS and read the real list, which
//   the backend's greeting re-issues after the handshake (section 2.2).
// - "STARTTLS" is advertised whether or not the backend offered it (the
//   backend usually listens in plaintext on loopback or a unix socket).
// Everything else (IMPLEMENTATION, SIEVE, NOTIFY, MAXREDIRECTS,
// UNAUTHENTICATE, VERSION, LANGUAGE, ...) passes unchanged, so that clients
// that decide on extensions before TLS see the backend's real ones.
import net from 'node:net';
import { MailfrontError } from '../errors.js';
import { parseServerAddress } from '../config/address.js';
import type { Config, ProxyProtocol } from '../config/schema.js';
import { loadAddon } from '../native.js';

/** Used when the backend cannot be probed and the listener sets no sieve_capabilities. */
export const DEFAULT_SIEVE_CAPABILITIES =
  '"IMPLEMENTATION" "mailfront"\r\n' +
  '"SIEVE" "fileinto reject envelope vacation imapflags notify subaddress relational regex"\r\n' +
  '"VERSION" "1.0"\r\n';

/** Largest greeting read from a backend. */
export const PROBE_MAX_BYTES = 16 * 1024;

/** The capability name of a line (`"SIEVE" "..."` -> "SIEVE"), upper case; undefined if the line is not a capability. */
function capabilityName(line: string): string | undefined {
  const m = /^"([^"]*)"/.exec(line);
  return m ? m[1]!.toUpperCase() : undefined;
}

/** Capability lines of a greeting or capability list; blank lines and the final OK/NO/BYE line are dropped. */
export function capabilityLines(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => capabilityName(l) !== undefined);
}

/**
 * Backend capability lines (or a whole greeting, with its OK line) -> the
 * pre-TLS capability text: quoted lines, each ending in CRLF, without "OK".
 */
export function preTlsSieveCapabilities(backend: string): string {
  const out: string[] = [];
  let starttlsAt = -1;
  let saslSeen = false;
  for (const line of capabilityLines(backend)) {
    const name = capabilityName(line);
    if (name === 'STARTTLS') {
      if (starttlsAt < 0) starttlsAt = out.length;
      continue;
    }
    if (name === 'SASL') {
      if (!saslSeen) out.push('"SASL" ""');
      saslSeen = true;
      continue;
    }
    out.push(line);
  }
  if (!saslSeen) {
    const impl = out.findIndex((l) => capabilityName(l) === 'IMPLEMENTATION');
    out.splice(impl + 1, 0, '"SASL" ""');
    if (starttlsAt > impl) starttlsAt++;
  }
  if (starttlsAt < 0) {
    const version = out.findIndex((l) => capabilityName(l) === 'VERSION');
    starttlsAt = version < 0 ? out.length : version;
  }
  out.splice(starttlsAt, 0, '"STARTTLS"');
  return out.map((l) => `${l}\r\n`).join('');
}

/**
 * Looks for the end of a ManageSieve greeting in `text`: the first line that
 * is not a capability ("OK ...", "NO ...", "BYE ..."). Undefined while incomplete.
 */
export function splitGreeting(text: string): { capabilities: string; status: string; statusLine: string } | undefined {
  let start = 0;
  for (;;) {
    const end = text.indexOf('\n', start);
    if (end < 0) return undefined;
    const line = text.slice(start, end).replace(/\r$/, '');
    if (!line.startsWith('"')) {
      const status = (/^(\S+)/.exec(line)?.[1] ?? '').toUpperCase();
      return { capabilities: capabilityLines(text.slice(0, start)).map((l) => `${l}\r\n`).join(''), status, statusLine: line };
    }
    start = end + 1;
  }
}

/**
 * Connect to a ManageSieve backend ("ip:port", "[v6]:port" or a unix socket
 * path), read its greeting up to the OK line (at most 16 KiB, within
 * timeoutMs in all), say LOGOUT, and return the capability lines (each ending
 * in CRLF, no OK line). Rejects with MailfrontError MF_BACKEND naming the server.
 * A pool that expects a PROXY header gets its LOCAL form first.
 */
export function probeSieveCapabilities(server: string, timeoutMs: number, proxyProtocol: ProxyProtocol = 'off'): Promise<string> {
  return new Promise((resolve, reject) => {
    const addr = parseServerAddress(server);
    if (typeof addr === 'string') {
      reject(new MailfrontError('MF_BACKEND', `sieve probe of ${server}: ${addr}`));
      return;
    }
    const socket = addr.kind === 'unix' ? net.connect({ path: addr.path }) : net.connect({ host: addr.host, port: addr.port });
    const header = loadAddon().localProxyHeader(proxyProtocol);
    if (header) socket.write(header);
    let buf = '';
    let done = false;
    const finish = (err: Error | undefined, caps?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) {
        socket.destroy();
        reject(new MailfrontError('MF_BACKEND', `sieve probe of ${server}: ${err.message}`, { cause: err }));
        return;
      }
      // Polite goodbye; the server's answer is not waited for.
      socket.end('LOGOUT\r\n');
      socket.resume();
      setTimeout(() => socket.destroy(), 1000).unref();
      resolve(caps!);
    };
    const timer = setTimeout(() => finish(new Error(`no complete greeting within ${timeoutMs} ms`)), timeoutMs);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      buf += chunk;
      // Only the greeting counts: bytes after its status line are not ours to judge.
      const g = splitGreeting(buf.slice(0, PROBE_MAX_BYTES + 1));
      if (g) {
        if (g.status !== 'OK') finish(new Error(`the server refused: ${JSON.stringify(g.statusLine.slice(0, 200))}`));
        else if (g.capabilities === '') finish(new Error('the greeting lists no capability'));
        else finish(undefined, g.capabilities);
      } else if (buf.length > PROBE_MAX_BYTES) {
        finish(new Error(`greeting longer than ${PROBE_MAX_BYTES} bytes`));
      }
    });
    socket.on('error', (err) => finish(err));
    socket.on('close', () => finish(new Error('connection closed before the greeting ended')));
  });
}

/**
 * Probe the backend of every managesieve listener (its servers in order until
 * one answers). Returns the capabilities by listener name, for buildSnapshot,
 * and the failures (a listener without an entry falls back to its
 * sieve_capabilities, then to DEFAULT_SIEVE_CAPABILITIES).
 */
export async function probeSieveListeners(
  config: Config,
  timeoutMs: number,
): Promise<{ capabilities: Map<string, string>; errors: MailfrontError[] }> {
  const capabilities = new Map<string, string>();
  const errors: MailfrontError[] = [];
  const byServerList = new Map<string, Promise<string>>();
  const probeBackend = async (servers: readonly string[], proxyProtocol: ProxyProtocol) => {
    let last: unknown;
    for (const s of servers) {
      try {
        return await probeSieveCapabilities(s, timeoutMs, proxyProtocol);
      } catch (err) {
        last = err;
        errors.push(err as MailfrontError);
      }
    }
    throw last;
  };
  await Promise.all(
    config.listeners
      .filter((l) => l.protocol === 'managesieve')
      .map(async (l) => {
        const backend = config.backends[l.backend];
        if (!backend) return;
        const key = `${backend.proxyProtocol}\n${backend.servers.join('\n')}`;
        let p = byServerList.get(key);
        if (!p) byServerList.set(key, (p = probeBackend(backend.servers, backend.proxyProtocol)));
        try {
          capabilities.set(l.name, await p);
        } catch {
          // recorded in errors
        }
      }),
  );
  return { capabilities, errors };
}
