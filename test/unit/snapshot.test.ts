import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { INTERMEDIATE_CIPHERS } from '../../src/config/schema.js';
import { buildSnapshot, nativeListeners, type CertSnapshot } from '../../src/snapshot.js';
import { defaultGroups, tlsLibrary } from '../../src/tls-library.js';
import type { NativeCertPair } from '../../src/native.js';

const YAML = `certificates:
  letsencrypt: [/etc/letsencrypt]
  unknown_sni: reject
listeners:
  - {name: imaps, protocol: imaps, listen: ["0.0.0.0:993", "[::]:993"], backend: imap-main}
  - {name: imap, protocol: imap, listen: ["0.0.0.0:143"], backend: imap-main}
  - {name: pop3, protocol: pop3, listen: ["0.0.0.0:110"], backend: pop-main}
  - {name: pop3s, protocol: pop3s, listen: ["0.0.0.0:995"], backend: pop-main, alpn: pop3x}
  - name: sieve
    protocol: managesieve
    listen: ["0.0.0.0:4190"]
    backend: sieve-main
    sieve_capabilities: |
      "IMPLEMENTATION" "Cyrus from config"
      "SASL" "PLAIN"
      "SIEVE" "fileinto"
      "VERSION" "1.0"
  - {name: sieve-b, protocol: managesieve, listen: ["127.0.0.1:4191"], backend: sieve-main}
backends:
  sieve-main: {servers: ["/run/cyrus/sieve.sock"]}
  imap-main: {servers: ["127.0.0.1:1143", "127.0.0.2:1143"], proxy_protocol: v2, balance: roundrobin}
  pop-main: {servers: ["127.0.0.1:1110"]}
  imap-other: {servers: ["[2001:db8::5]:143"], proxy_protocol: v1}
  sieve-other: {servers: ["10.0.0.5:4190"]}
routes:
  - {sni: mail.example.net, backends: {imaps: imap-other}}
  - {sni: "*.example.org", backends: {imaps: imap-other, imap: imap-other, sieve: sieve-other}}
  - {sni: "*.Example.COM", backends: {sieve: sieve-other, imaps: imap-main}}
timeouts: {handshake: 7s, pretls: 30s, connect: 2s, idle: 45m}
limits: {connections: 5000, per_client: 50, line_bytes: 4096}
tls: {min_version: TLSv1.3, ciphersuites: TLS_AES_256_GCM_SHA384}
`;

const certs: CertSnapshot = {
  contexts: [{ certs: [{} as NativeCertPair] }],
  exact: { 'mail.example.com': 0 },
  wildcard: { 'example.org': 0 },
  defaultContext: 0,
};

describe('buildSnapshot', () => {
  const config = parseConfig(YAML, 's.yaml');
  const probed = new Map([['sieve-b', '"IMPLEMENTATION" "Cyrus timsieved v3.6.1"\r\n"SASL" "PLAIN"\r\n"SIEVE" "fileinto vacation"\r\n"STARTTLS"\r\n"VERSION" "1.0"\r\n']]);
  const snap = buildSnapshot(config, certs, probed);

  it('indexes backends by sorted name and copies their settings', () => {
    expect(snap.backends.map((b) => b.name)).toEqual(['imap-main', 'imap-other', 'pop-main', 'sieve-main', 'sieve-other']);
    expect(snap.backends[0]).toEqual({ name: 'imap-main', servers: ['127.0.0.1:1143', '127.0.0.2:1143'], proxyProtocol: 'v2', balance: 'roundrobin' });
    expect(snap.backends[1]).toEqual({ name: 'imap-other', servers: ['[2001:db8::5]:143'], proxyProtocol: 'v1', balance: 'first' });
    expect(snap.backends[3]!.servers).toEqual(['/run/cyrus/sieve.sock']);
  });

  it('translates routes per listener, in order, with backend indexes', () => {
    const by = Object.fromEntries(snap.listeners.map((l) => [l.name, l]));
    expect(snap.listeners.map((l) => l.name)).toEqual(['imaps', 'imap', 'pop3', 'pop3s', 'sieve', 'sieve-b']);
    expect(by.imaps!.backend).toBe(0);
    expect(by.imaps!.routes).toEqual([
      { sni: 'mail.example.net', backend: 1 },
      { sni: '*.example.org', backend: 1 },
      { sni: '*.example.com', backend: 0 },
    ]);
    expect(by.imap!.routes).toEqual([{ sni: '*.example.org', backend: 1 }]);
    expect(by.pop3!.backend).toBe(2);
    expect(by.pop3!.routes).toEqual([]);
    expect(by.sieve!.backend).toBe(3);
    expect(by.sieve!.routes).toEqual([
      { sni: '*.example.org', backend: 4 },
      { sni: '*.example.com', backend: 4 },
    ]);
    expect(by['sieve-b']!.routes).toEqual([]);
  });

  it('sets ALPN and pre-TLS capabilities by protocol', () => {
    const by = Object.fromEntries(snap.listeners.map((l) => [l.name, l]));
    expect(by.imaps).toMatchObject({ protocol: 'imaps', alpn: 'imap', capabilities: '' });
    expect(by.imap).toMatchObject({ protocol: 'imap', alpn: 'imap', capabilities: 'IMAP4rev1 STARTTLS LOGINDISABLED' });
    expect(by.pop3).toMatchObject({ alpn: 'pop3', capabilities: 'STLS\r\nRESP-CODES\r\nIMPLEMENTATION mailfront\r\n' });
    expect(by.pop3s).toMatchObject({ alpn: 'pop3x', capabilities: '' });
    // No probe result for "sieve": its sieve_capabilities, transformed.
    expect(by.sieve).toMatchObject({
      alpn: 'managesieve',
      capabilities: '"IMPLEMENTATION" "Cyrus from config"\r\n"SASL" ""\r\n"SIEVE" "fileinto"\r\n"STARTTLS"\r\n"VERSION" "1.0"\r\n',
    });
    // Probed backend greeting wins.
    expect(by['sieve-b']!.capabilities).toBe('"IMPLEMENTATION" "Cyrus timsieved v3.6.1"\r\n"SASL" ""\r\n"SIEVE" "fileinto vacation"\r\n"STARTTLS"\r\n"VERSION" "1.0"\r\n');
  });

  it('falls back to the built-in sieve capabilities', () => {
    const s = buildSnapshot(config, certs, undefined);
    expect(s.listeners.find((l) => l.name === 'sieve-b')!.capabilities).toBe(
      '"IMPLEMENTATION" "mailfront"\r\n"SASL" ""\r\n"SIEVE" "fileinto reject envelope vacation imapflags notify subaddress relational regex"\r\n"STARTTLS"\r\n"VERSION" "1.0"\r\n',
    );
  });

  it('carries certificates, TLS settings, timeouts in ms and limits', () => {
    expect(snap.contexts).toBe(certs.contexts);
    expect(snap.exact).toEqual({ 'mail.example.com': 0 });
    expect(snap.wildcard).toEqual({ 'example.org': 0 });
    expect(snap.defaultContext).toBe(0);
    expect(snap.unknownSni).toBe('reject');
    expect(snap.tls).toEqual({ minVersion: 'TLSv1.3', ciphers: INTERMEDIATE_CIPHERS, ciphersuites: 'TLS_AES_256_GCM_SHA384', groups: defaultGroups(tlsLibrary()), recordLayer: 'mailfront', ticketKeys: [] });
    expect(snap.timeouts).toEqual({ handshakeMs: 7000, pretlsMs: 30_000, connectMs: 2000, idleMs: 45 * 60_000 });
    expect(snap.limits).toEqual({ connections: 5000, perClient: 50, lineBytes: 4096, loginTracking: true, loginFailures: { count: 10, windowMs: 600_000, banMs: 900_000 }, connectionRate: 600, ipv6Prefix: 64, exempt: [] });
    const key = Buffer.alloc(80, 1);
    expect(buildSnapshot(config, certs, undefined, [key]).tls.ticketKeys).toEqual([key]);
  });

  it('does not depend on the order of backends in the file', () => {
    const reordered = YAML.replace(
      /backends:\n(  sieve-main.*\n)(  imap-main.*\n)/,
      (_m, a: string, b: string) => `backends:\n${b}${a}`,
    );
    expect(reordered).not.toBe(YAML);
    expect(buildSnapshot(parseConfig(reordered, 's.yaml'), certs, probed)).toEqual(snap);
  });
});

describe('nativeListeners', () => {
  it('lists listeners in config order, the same order as snapshot.listeners', () => {
    const config = parseConfig(YAML, 's.yaml');
    const ls = nativeListeners(config);
    expect(ls[0]).toEqual({ name: 'imaps', protocol: 'imaps', addresses: ['0.0.0.0:993', '[::]:993'] });
    expect(ls.map((l) => l.name)).toEqual(buildSnapshot(config, certs, undefined).listeners.map((l) => l.name));
  });
});
