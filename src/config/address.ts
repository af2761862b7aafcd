// Address syntax: "ip:port" / "[v6]:port" for listeners and the metrics
// listener, plus absolute unix socket paths for backend servers. What is
// accepted is the data plane's rule (native/net.h parse_addr, through the
// parseAddress export); this file words its refusals for the configuration.
import { loadAddon, type NativeAddress } from '../native.js';

export type ParsedAddress =
  | { kind: 'tcp'; host: string; port: number; family: 4 | 6 }
  | { kind: 'unix'; path: string };

/** sun_path is 108 bytes on Linux, one of them the terminating NUL. */
export const UNIX_PATH_MAX = 107;

type Refusal = Extract<NativeAddress, { error: string }>;

function explain(text: string, r: Refusal, opts: { minPort: number; server: boolean }): string {
  const host = r.host ?? '';
  switch (r.error) {
    case 'missing-bracket': return `"${text}": missing "]" after the IPv6 address`;
    case 'no-port-after-bracket': return `"${text}": expected ":port" after "]"`;
    case 'not-ipv6': return `"${text}": "${host}" is not an IPv6 address`;
    case 'no-port': return `"${text}": expected "ip:port" or "[v6]:port" (the port is missing)`;
    case 'unbracketed-ipv6': return `"${text}": an IPv6 address needs brackets, as in "[${host}]:${r.port ?? ''}"`;
    case 'no-host': return `"${text}": the host is missing (use 0.0.0.0 or [::] for every address)`;
    case 'not-ip':
      if (!opts.server) return `"${text}": "${host}" is not an IPv4 address (host names are not accepted here)`;
      if (loadAddon().normalizeHostName(host) === null) return `"${text}": "${host}" is neither an IP address nor a host name`;
      // The data plane connects without DNS (no blocking lookups on a worker thread).
      return `"${text}": host names are not resolved; write ${host.toLowerCase() === 'localhost' ? '127.0.0.1' : 'an IP address, e.g. 192.0.2.10'}${portSuffix(r.port)}, "[v6]:port" or a unix socket path`;
    case 'bad-port': return `"${text}": port "${r.port ?? ''}" is not a number`;
    case 'port-range': return `"${text}": port ${Number(r.port)} is out of range (${opts.minPort}..65535)`;
    case 'unix-too-long': return `"${text}": a unix socket path is at most ${UNIX_PATH_MAX} bytes long`;
    case 'unix-nul': return `"${text}": a unix socket path cannot hold a NUL byte`;
  }
}

/** ":993" when the port text is a port; the example then reads "127.0.0.1:993". */
function portSuffix(port: string | undefined): string {
  return port !== undefined && /^\d{1,5}$/.test(port) && Number(port) <= 65535 ? `:${Number(port)}` : ':port';
}

function parse(text: string, opts: { minPort: number; server: boolean }): ParsedAddress | string {
  const r = loadAddon().parseAddress(text);
  if ('error' in r) return explain(text, r, opts);
  if (r.kind === 'tcp' && r.port < opts.minPort) return `"${text}": port ${r.port} is out of range (${opts.minPort}..65535)`;
  return r;
}

/** A listen address: "ip:port" or "[v6]:port", port 0..65535 (0: any free port). */
export function parseListenAddress(text: string): ParsedAddress | string {
  if (text.startsWith('/')) return `"${text}": expected "ip:port" or "[v6]:port" (a listener is not a unix socket)`;
  return parse(text, { minPort: 0, server: false });
}

/**
 * A backend server: "ipv4:port", "[v6]:port" (port 1..65535) or an absolute
 * unix socket path. Host names are refused: the data plane parses addresses
 * with inet_pton and never resolves names.
 */
export function parseServerAddress(text: string): ParsedAddress | string {
  if (!text.startsWith('/') && !text.includes(':')) {
    return `"${text}": expected "ip:port", "[v6]:port" or an absolute unix socket path`;
  }
  return parse(text, { minPort: 1, server: true });
}

/** Where to connect for an address the configuration accepted (node:net options). */
export function connectTarget(address: string): { path: string } | { host: string; port: number } {
  const r = parseServerAddress(address);
  if (typeof r === 'string') throw new Error(r);
  return r.kind === 'unix' ? { path: r.path } : { host: r.host, port: r.port };
}
