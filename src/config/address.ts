// Address syntax shared by the configuration and the backend probes.
// "ip:port" / "[v6]:port" for listeners, plus absolute unix
// socket paths for backend servers. Pure functions, no I/O.
import net from 'node:net';

export type ParsedAddress =
  | { kind: 'tcp'; host: string; port: number; family: 4 | 6 | 0 }
  | { kind: 'unix'; path: string };

/** sun_path is 108 bytes on Linux, one of them the terminating NUL. */
export const UNIX_PATH_MAX = 107;

const HOSTNAME = /^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$/i;

/** A DNS host name (letters, digits, "-", "_", dots), not an IP literal check. */
export function isHostname(s: string): boolean {
  return HOSTNAME.test(s);
}

function parsePort(text: string, min: number): number | string {
  if (!/^\d{1,5}$/.test(text)) return `port "${text}" is not a number`;
  const port = Number(text);
  if (port < min || port > 65535) return `port ${port} is out of range (${min}..65535)`;
  return port;
}

/**
 * Split "host:port" or "[v6]:port". Returns an error text, or the parts.
 * `hostKind`: "ip" accepts only IP literals (listen addresses), "host" also
 * accepts DNS names (backend servers).
 */
export function parseHostPort(
  text: string,
  opts: { hostKind: 'ip' | 'host'; minPort: number },
): { host: string; port: number; family: 4 | 6 | 0 } | string {
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const end = text.indexOf(']');
    if (end < 0) return `"${text}": missing "]" after the IPv6 address`;
    host = text.slice(1, end);
    if (text[end + 1] !== ':') return `"${text}": expected ":port" after "]"`;
    portText = text.slice(end + 2);
    if (!net.isIPv6(host)) return `"${text}": "${host}" is not an IPv6 address`;
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) return `"${text}": expected "ip:port" or "[v6]:port" (the port is missing)`;
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) return `"${text}": an IPv6 address needs brackets, as in "[${host}]:${portText}"`;
    if (host === '') return `"${text}": the host is missing (use 0.0.0.0 or [::] for every address)`;
    if (!net.isIPv4(host)) {
      if (opts.hostKind === 'ip') return `"${text}": "${host}" is not an IPv4 address (host names are not accepted here)`;
      if (/^[\d.]+$/.test(host) || !isHostname(host)) return `"${text}": "${host}" is neither an IP address nor a host name`;
    }
  }
  const port = parsePort(portText, opts.minPort);
  if (typeof port === 'string') return `"${text}": ${port}`;
  const family = net.isIPv4(host) ? 4 : net.isIPv6(host) ? 6 : 0;
  return { host, port, family };
}

/** A listen address: "ip:port" or "[v6]:port", port 0..65535 (0: any free port). */
export function parseListenAddress(text: string): ParsedAddress | string {
  const r = parseHostPort(text, { hostKind: 'ip', minPort: 0 });
  return typeof r === 'string' ? r : { kind: 'tcp', ...r };
}

/**
 * A backend server: "ipv4:port", "[v6]:port" (port 1..65535) or an absolute
 * unix socket path. Host names are refused: the data plane parses addresses
 * with inet_pton and never resolves names.
 */
export function parseServerAddress(text: string): ParsedAddress | string {
  if (text.startsWith('/')) {
    if (Buffer.byteLength(text) > UNIX_PATH_MAX) {
      return `"${text}": a unix socket path is at most ${UNIX_PATH_MAX} bytes long`;
    }
    if (text.includes('\0')) return `"${text}": a unix socket path cannot hold a NUL byte`;
    return { kind: 'unix', path: text };
  }
  if (!text.includes(':')) {
    return `"${text}": expected "ip:port", "[v6]:port" or an absolute unix socket path`;
  }
  const r = parseHostPort(text, { hostKind: 'host', minPort: 1 });
  if (typeof r === 'string') return r;
  if (r.family === 0) {
    // The data plane connects without DNS (no blocking lookups on a worker thread).
    const ip = r.host.toLowerCase() === 'localhost' ? `127.0.0.1:${r.port}` : `an IP address, e.g. 192.0.2.10:${r.port}`;
    return `"${text}": host names are not resolved; write ${ip}, "[v6]:port" or a unix socket path`;
  }
  return { kind: 'tcp', ...r };
}
