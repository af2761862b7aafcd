// Config + certificate store -> the data plane's NativeSnapshot and listener
// list (src/native.ts). Pure: no I/O.
import type { Config } from './config/schema.js';
import type { NativeBackend, NativeListener, NativeListenerPolicy, NativeSnapshot, Protocol } from './native.js';
import { DEFAULT_SIEVE_CAPABILITIES, preTlsSieveCapabilities } from './frontends/sieve-capabilities.js';

/** The certificate part of a snapshot, as the certificate store builds it. */
export type CertSnapshot = Pick<NativeSnapshot, 'contexts' | 'exact' | 'wildcard' | 'defaultContext'>;

/** Pre-TLS IMAP capability atoms: plaintext LOGIN and AUTHENTICATE are refused until STARTTLS. */
export const IMAP_PRETLS_CAPABILITIES = 'IMAP4rev1 STARTTLS LOGINDISABLED';

/**
 * Pre-TLS POP3 CAPA lines. Only what mailfront itself does before TLS:
 * STLS, extended response codes, and who answers. No USER/SASL: credentials
 * are refused in plaintext. The backend's own CAPA is what clients see after TLS.
 */
export const POP3_PRETLS_CAPABILITIES = 'STLS\r\nRESP-CODES\r\nIMPLEMENTATION mailfront\r\n';

/** Listeners to bind, in config order (the order NativeSnapshot.listeners follows). */
export function nativeListeners(config: Config): NativeListener[] {
  return config.listeners.map((l) => ({ name: l.name, protocol: l.protocol, addresses: [...l.listen] }));
}

/** Backend names in snapshot order: sorted, so indexes do not depend on key order in the file. */
export function backendOrder(config: Config): string[] {
  return Object.keys(config.backends).sort();
}

/**
 * Build the snapshot handed to NativeProxy.apply().
 * `sieveCapabilities`: the backend's capability lines by managesieve listener
 * name (probeSieveListeners); a listener without an entry uses its
 * sieve_capabilities, else DEFAULT_SIEVE_CAPABILITIES.
 * `ticketKeys`: session-ticket keys (80 bytes each, newest first); default none.
 */
export function buildSnapshot(
  config: Config,
  certs: CertSnapshot,
  sieveCapabilities: ReadonlyMap<string, string> | undefined,
  ticketKeys: readonly Buffer[] = [],
): NativeSnapshot {
  const names = backendOrder(config);
  const index = new Map(names.map((n, i) => [n, i]));
  const backendIndex = (name: string, where: string): number => {
    const i = index.get(name);
    // The schema guarantees references; this guards hand-made Configs.
    if (i === undefined) throw new Error(`${where}: no backend named "${name}"`);
    return i;
  };
  const backends: NativeBackend[] = names.map((name) => {
    const b = config.backends[name]!;
    return { name, servers: [...b.servers], proxyProtocol: b.proxyProtocol, balance: b.balance };
  });
  const listeners: NativeListenerPolicy[] = config.listeners.map((l) => {
    const routes: NativeListenerPolicy['routes'] = [];
    config.routes.forEach((r, i) => {
      const b = r.backends[l.name];
      if (b !== undefined) routes.push({ sni: r.sni, backend: backendIndex(b, `routes[${i}].backends.${l.name}`) });
    });
    return {
      name: l.name,
      protocol: l.protocol,
      backend: backendIndex(l.backend, `listener ${l.name}`),
      routes,
      capabilities: capabilitiesFor(l.protocol, sieveCapabilities?.get(l.name) ?? l.sieveCapabilities),
      alpn: l.alpn,
      acceptProxy: l.acceptProxy,
      trustedProxies: [...l.trustedProxies],
    };
  });
  return {
    contexts: certs.contexts,
    exact: certs.exact,
    wildcard: certs.wildcard,
    defaultContext: certs.defaultContext,
    unknownSni: config.certificates.unknownSni,
    tls: {
      minVersion: config.tls.minVersion,
      ciphers: config.tls.ciphers,
      ciphersuites: config.tls.ciphersuites,
      groups: config.tls.groups,
      recordLayer: config.tls.recordLayer,
      ticketKeys: [...ticketKeys],
    },
    backends,
    listeners,
    timeouts: {
      handshakeMs: config.timeouts.handshakeMs,
      pretlsMs: config.timeouts.pretlsMs,
      connectMs: config.timeouts.connectMs,
      idleMs: config.timeouts.idleMs,
    },
    limits: {
      connections: config.limits.connections,
      perClient: config.limits.perClient,
      lineBytes: config.limits.lineBytes,
      loginTracking: config.limits.loginTracking,
      loginFailures: { ...config.limits.loginFailures },
      connectionRate: config.limits.connectionRate,
      ipv6Prefix: config.limits.ipv6Prefix,
      exempt: [...config.limits.exempt],
    },
  };
}

function capabilitiesFor(protocol: Protocol, sieveSource: string | undefined): string {
  switch (protocol) {
    case 'imap':
      return IMAP_PRETLS_CAPABILITIES;
    case 'pop3':
      return POP3_PRETLS_CAPABILITIES;
    case 'managesieve':
      return preTlsSieveCapabilities(sieveSource ?? DEFAULT_SIEVE_CAPABILITIES);
    default:
      return '';
  }
}
