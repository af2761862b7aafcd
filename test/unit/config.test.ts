import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { MailfrontError } from '../../src/errors.js';
import { ConfigError, loadConfig, parseConfig } from '../../src/config/load.js';
import { configWarnings, INTERMEDIATE_CIPHERS, parseDuration, suggestKey } from '../../src/config/schema.js';
import { opensslShortVersion, runtimeSupport, tlsLibrary, type TlsLibrary } from '../../src/tls-library.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const designYaml = (): string => {
  const design = readFileSync('/work/shared/DESIGN.md', 'utf8');
  const m = /## Configuration: the contract[\s\S]*?```yaml\n([\s\S]*?)```/.exec(design);
  if (!m) throw new Error('no YAML block in DESIGN.md');
  return m[1]!;
};

const MINIMAL = `certificates:
  pem_dirs: [/etc/mailfront/pems]
listeners:
  - name: imaps
    protocol: imaps
    listen: ["127.0.0.1:993"]
    backend: cyrus
backends:
  cyrus:
    servers: ["127.0.0.1:1143"]
`;

/** What the data plane's OpenSSL offers, without the addon: Node 20's 3.0 and Node 24's 3.5. */
const CLASSICAL = ['X25519', 'X448', 'P-256', 'P-384', 'P-521', 'prime256v1', 'secp384r1'];
const fakeLibrary = (version: string, versionNumber: number, groups: string[]): TlsLibrary => ({
  version,
  versionNumber,
  hasGroup: (n) => groups.some((g) => g.toLowerCase() === n.toLowerCase()),
  // TLS 1.2 suites are the same in 3.0 and 3.5: the running library answers.
  cipherList: (list) => tlsLibrary().cipherList(list),
});
const OPENSSL_30 = fakeLibrary('OpenSSL 3.0.19 27 Jan 2026', 0x30000130, CLASSICAL);
const OPENSSL_35 = fakeLibrary('OpenSSL 3.5.9 29 Sep 2026', 0x30500090, [...CLASSICAL, 'X25519MLKEM768', 'SecP256r1MLKEM768', 'MLKEM768']);

/** The error lines of a text that must fail. */
function errorsOf(text: string, file = 'test.yaml', lib?: TlsLibrary): string[] {
  try {
    parseConfig(text, file, lib);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('MF_CONFIG_INVALID');
    const lines = (err as Error).message.split('\n');
    expect(lines).toHaveLength((err as ConfigError).issues.length);
    return lines;
  }
  throw new Error('expected the configuration to be refused');
}

describe('parseConfig: valid documents', () => {
  it('reads the DESIGN.md example; its tls.groups needs an OpenSSL with ML-KEM', () => {
    // The contract names the hybrid group explicitly: on OpenSSL 3.0 that one line is refused.
    const verbatim = errorsOf(designYaml(), 'design.yaml', OPENSSL_30);
    expect(verbatim).toHaveLength(1);
    expect(verbatim[0]).toMatch(/^design\.yaml:\d+:\d+: tls\.groups: group "X25519MLKEM768" is not offered by OpenSSL 3\.0\.19/);

    const c = parseConfig(designYaml(), '/etc/mailfront/mailfront.yaml', OPENSSL_35);
    expect(c.certificates).toEqual({
      letsencrypt: ['/etc/letsencrypt'],
      pemDirs: ['/etc/letsencrypt/pems'],
      pairs: [{ cert: '/path/fullchain.pem', key: '/path/privkey.pem' }],
      default: 'mail.example.com',
      unknownSni: 'default',
      watch: false,
    });
    expect(c.listeners.map((l) => [l.name, l.protocol, l.backend])).toEqual([
      ['imaps', 'imaps', 'cyrus-imap'],
      ['sieve', 'managesieve', 'cyrus-sieve'],
    ]);
    expect(c.listeners[0]!.listen).toEqual(['0.0.0.0:993', '[::]:993']);
    expect(c.backends['cyrus-imap']).toEqual({ servers: ['127.0.0.1:1143'], proxyProtocol: 'off', balance: 'first' });
    expect(c.routes).toEqual([{ sni: '*.example.org', backends: { imaps: 'other-imap', sieve: 'other-sieve' } }]);
    expect(c.tls).toEqual({
      minVersion: 'TLSv1.2',
      ciphers: INTERMEDIATE_CIPHERS,
      ciphersuites: 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256',
      groups: 'X25519MLKEM768:X25519:P-256',
      recordLayer: 'mailfront',
    });
    expect(c.timeouts).toEqual({ handshakeMs: 10_000, pretlsMs: 60_000, connectMs: 5_000, idleMs: 31 * 60_000, drainMs: 30_000 });
    expect(c.limits).toEqual({ connections: 100_000, perClient: 200, lineBytes: 8192, loginTracking: true, loginFailures: { count: 10, windowMs: 600_000, banMs: 900_000 }, connectionRate: 600, ipv6Prefix: 64, exempt: [] });
    expect(c.workers).toBe(os.availableParallelism());
    expect(c.metrics).toEqual({ listen: '127.0.0.1:9187' });
    expect(c.log).toEqual({ level: 'info', usernames: true });
  });

  it('reads the annotated example file', async () => {
    const file = path.join(root, 'config/mailfront.example.yaml');
    const c = await loadConfig(file);
    expect(c.listeners.map((l) => l.name)).toEqual(['imaps', 'pop3s', 'sieve']);
    expect(Object.keys(c.backends)).toEqual(['cyrus-imap', 'cyrus-pop3', 'cyrus-sieve', 'other-imap', 'other-sieve']);
    expect(c.timeouts.idleMs).toBe(31 * 60_000);
    expect(configWarnings(c)).toEqual([]);
  });

  it('fills every default in a minimal file', () => {
    const c = parseConfig(MINIMAL, '/etc/mailfront/m.yaml');
    expect(c.certificates).toEqual({ letsencrypt: [], pemDirs: ['/etc/mailfront/pems'], pairs: [], unknownSni: 'default', watch: false });
    expect(c.routes).toEqual([]);
    expect(c.tls.minVersion).toBe('TLSv1.2');
    expect(c.tls.ciphers).toBe(INTERMEDIATE_CIPHERS);
    expect(c.timeouts.idleMs).toBe(1_860_000);
    expect(c.limits.lineBytes).toBe(8192);
    expect(c.metrics).toEqual({ listen: '127.0.0.1:9187' });
    expect(c.backends.cyrus).toEqual({ servers: ['127.0.0.1:1143'], proxyProtocol: 'off', balance: 'first' });
  });

  it('returns a deeply frozen Config', () => {
    const c = parseConfig(MINIMAL, 'm.yaml');
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.listeners[0]!.listen)).toBe(true);
    expect(Object.isFrozen(c.backends.cyrus!.servers)).toBe(true);
    expect(() => {
      (c.limits as { connections: number }).connections = 1;
    }).toThrow(TypeError);
  });

  it('resolves relative paths against the file, lowercases route names, accepts variants', () => {
    const c = parseConfig(
      MINIMAL.replace('pem_dirs: [/etc/mailfront/pems]', 'pem_dirs: pems\n  pairs: [{cert: a/c.pem, key: /k.pem}]\n  default: Mail.Example.COM') +
        'routes:\n  - {sni: "*.Example.ORG", backends: {imaps: cyrus}}\n  - {sni: Mail.Example.Net, backends: {imaps: cyrus}}\n' +
        'tls: {ciphers: modern, ticket_keys: keys.bin}\nmetrics: false\nworkers: 3\ntimeouts: {handshake: 1m30s, connect: 500ms}\n',
      '/srv/mf/mailfront.yaml',
    );
    expect(c.certificates.pemDirs).toEqual(['/srv/mf/pems']);
    expect(c.certificates.pairs).toEqual([{ cert: '/srv/mf/a/c.pem', key: '/k.pem' }]);
    expect(c.certificates.default).toBe('mail.example.com');
    expect(c.routes.map((r) => r.sni)).toEqual(['*.example.org', 'mail.example.net']);
    expect(c.tls.minVersion).toBe('TLSv1.3');
    expect(c.tls.ciphers).toBe(INTERMEDIATE_CIPHERS);
    expect(c.tls.ticketKeys).toBe('/srv/mf/keys.bin');
    expect(c.metrics).toBe(false);
    expect(c.workers).toBe(3);
    expect(c.timeouts.handshakeMs).toBe(90_000);
    expect(c.timeouts.connectMs).toBe(500);
  });

  it('takes proxy_protocol v2-ssl (v2 with the TLS TLVs) and refuses v3', () => {
    const c = parseConfig(MINIMAL.replace('servers: ["127.0.0.1:1143"]', 'servers: ["127.0.0.1:1143"]\n    proxy_protocol: v2-ssl'), 'm.yaml');
    expect(c.backends.cyrus!.proxyProtocol).toBe('v2-ssl');
    expect(() => parseConfig(MINIMAL.replace('servers: ["127.0.0.1:1143"]', 'servers: ["127.0.0.1:1143"]\n    proxy_protocol: v3'), 'm.yaml')).toThrow(/off, v1, v2, v2-ssl/);
  });

  it('takes proxy_protocol off read as a YAML 1.1 boolean', () => {
    const c = parseConfig('%YAML 1.1\n---\n' + MINIMAL.replace('servers: ["127.0.0.1:1143"]', 'servers: ["127.0.0.1:1143"]\n    proxy_protocol: off'), 'm.yaml');
    expect(c.backends.cyrus!.proxyProtocol).toBe('off');
  });

  it('warns (without refusing) about an idle timeout that breaks IMAP IDLE', () => {
    const c = parseConfig(MINIMAL + 'timeouts: {idle: 10m}\n', 'm.yaml');
    expect(c.timeouts.idleMs).toBe(600_000);
    expect(configWarnings(c).join('\n')).toMatch(/timeouts\.idle is under 30m/);
  });
});

describe('parseConfig: errors name FILE:LINE:COL and the key path', () => {
  it('unknown key, with a did-you-mean hint', () => {
    const text = MINIMAL.replace('  pem_dirs: [/etc/mailfront/pems]', '  pem_dirs: [/x]\n  cert_dir: [/y]\n  pemdirs: [/z]');
    expect(errorsOf(text)).toEqual([
      'test.yaml:3:3: certificates.cert_dir: unknown key "cert_dir" (did you mean "pem_dirs"?)',
      'test.yaml:4:3: certificates.pemdirs: unknown key "pemdirs" (did you mean "pem_dirs"?)',
    ]);
    expect(errorsOf(MINIMAL + 'timeout: {idle: 31m}\n')).toEqual(['test.yaml:11:1: timeout: unknown key "timeout" (did you mean "timeouts"?)']);
    expect(errorsOf(MINIMAL.replace('    backend: cyrus', '    backend: cyrus\n    protcol: imap'))[0]).toBe(
      'test.yaml:8:5: listeners[0].protcol: unknown key "protcol" (did you mean "protocol"?)',
    );
    expect(errorsOf(MINIMAL + 'frobnicate: 1\n')[0]).toMatch(/^test\.yaml:11:1: frobnicate: unknown key "frobnicate" \(known keys: certificates, /);
  });

  it('duration without a unit, or with a bad one', () => {
    expect(errorsOf(MINIMAL + 'timeouts:\n  handshake: 10\n  idle: 31 minutes\n')).toEqual([
      'test.yaml:12:14: timeouts.handshake: a duration needs a unit: write "10s" or "10ms" (units: ms, s, m, h)',
      'test.yaml:13:9: timeouts.idle: "31 minutes" is not a duration (examples: 500ms, 10s, 31m, 1h)',
    ]);
  });

  it('missing backend reference, from a listener and from a route', () => {
    expect(errorsOf(MINIMAL.replace('backend: cyrus', 'backend: cyrys'))).toEqual([
      'test.yaml:7:14: listeners[0].backend: no backend named "cyrys" (did you mean "cyrus"?)',
    ]);
    expect(errorsOf(MINIMAL + 'routes:\n  - sni: a.example.org\n    backends: {imaps: nope, sieve: cyrus}\n')).toEqual([
      'test.yaml:13:23: routes[0].backends.imaps: no backend named "nope" (backends: cyrus)',
      'test.yaml:13:29: routes[0].backends.sieve: no listener named "sieve" (listeners: imaps)',
    ]);
  });

  it('duplicate listener name', () => {
    const text = MINIMAL.replace('backends:', '  - name: imaps\n    protocol: imap\n    listen: ["127.0.0.1:143"]\n    backend: cyrus\nbackends:');
    expect(errorsOf(text)).toEqual(['test.yaml:8:11: listeners[1].name: duplicate listener name "imaps" (also listeners[0])']);
  });

  it('bad addresses', () => {
    const text = MINIMAL.replace('["127.0.0.1:993"]', '["127.0.0.1:99999", "::1:993", "mail.example.com:993", "[::1]:993"]').replace(
      '["127.0.0.1:1143"]',
      '["cyrus", "[::1]:0", "relative/sock", "localhost:1143", "imap.internal:143"]',
    );
    expect(errorsOf(text)).toEqual([
      'test.yaml:6:14: listeners[0].listen[0]: "127.0.0.1:99999": port 99999 is out of range (0..65535)',
      'test.yaml:6:33: listeners[0].listen[1]: "::1:993": an IPv6 address needs brackets, as in "[::1]:993"',
      'test.yaml:6:44: listeners[0].listen[2]: "mail.example.com:993": "mail.example.com" is not an IPv4 address (host names are not accepted here)',
      'test.yaml:10:15: backends.cyrus.servers[0]: "cyrus": expected "ip:port", "[v6]:port" or an absolute unix socket path',
      'test.yaml:10:24: backends.cyrus.servers[1]: "[::1]:0": port 0 is out of range (1..65535)',
      'test.yaml:10:35: backends.cyrus.servers[2]: "relative/sock": expected "ip:port", "[v6]:port" or an absolute unix socket path',
      'test.yaml:10:52: backends.cyrus.servers[3]: "localhost:1143": host names are not resolved; write 127.0.0.1:1143, "[v6]:port" or a unix socket path',
      'test.yaml:10:70: backends.cyrus.servers[4]: "imap.internal:143": host names are not resolved; write an IP address, e.g. 192.0.2.10:143, "[v6]:port" or a unix socket path',
    ]);
  });

  it('bad protocol', () => {
    expect(errorsOf(MINIMAL.replace('protocol: imaps', 'protocol: IMAPS'))).toEqual([
      'test.yaml:5:15: listeners[0].protocol: "IMAPS" is not one of imaps, pop3s, imap, pop3, managesieve (did you mean "imaps"?)',
    ]);
    expect(errorsOf(MINIMAL.replace('    protocol: imaps\n', ''))).toEqual([
      'test.yaml:4:5: listeners[0].protocol: is required: one of imaps, pop3s, imap, pop3, managesieve',
    ]);
  });

  it('TLSv1.1 (and 1.0) refused with the reason', () => {
    expect(errorsOf(MINIMAL + 'tls:\n  min_version: TLSv1.1\n')).toEqual([
      'test.yaml:12:16: tls.min_version: TLSv1.1 is refused: SSL, TLS 1.0 and TLS 1.1 are broken and deprecated (RFC 8996); use TLSv1.2 or TLSv1.3',
    ]);
    expect(errorsOf(MINIMAL + 'tls: {min_version: TLSv1}\n')[0]).toMatch(/TLSv1 is refused/);
    expect(errorsOf(MINIMAL + 'tls: {ciphers: modern, min_version: TLSv1.2}\n')[0]).toMatch(/tls\.min_version: ciphers: modern means TLS 1\.3 only/);
  });

  it('a custom tls.ciphers that leaves anonymous, non-ECDHE or non-AEAD suites: refused, naming them', () => {
    const v = opensslShortVersion(tlsLibrary());
    const one = (ciphers: string) => errorsOf(MINIMAL + `tls:\n  ciphers: "${ciphers}"\n`);
    expect(one('aNULL')[0]).toMatch(
      /^test\.yaml:12:12: tls\.ciphers: "aNULL" gives suites that are not ECDHE with an AEAD cipher: ADH-AES256-GCM-SHA384 \(anonymous, DHE key exchange\), ADH-AES128-GCM-SHA256 \(anonymous, DHE key exchange\), .* and \d+ more; list ECDHE suites with AES-GCM or CHACHA20-POLY1305 only/,
    );
    expect(one('ECDHE-RSA-AES128-GCM-SHA256:eNULL')[0]).toContain('ECDHE-ECDSA-NULL-SHA (not AEAD)');
    expect(one('ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA')).toEqual([
      'test.yaml:12:12: tls.ciphers: "ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA" gives suites that are not ECDHE with an AEAD cipher: AES128-SHA (RSA key transport, no forward secrecy, not AEAD); list ECDHE suites with AES-GCM or CHACHA20-POLY1305 only (e.g. ECDHE+AESGCM:ECDHE+CHACHA20), or use intermediate',
    ]);
    expect(one('ECDHE-RSA-AES128-SHA256')[0]).toContain('ECDHE-RSA-AES128-SHA256 (not AEAD)'); // CBC
    expect(one('AES128-GCM-SHA256')[0]).toContain('AES128-GCM-SHA256 (RSA key transport, no forward secrecy)'); // static RSA
    expect(one('DHE-RSA-AES128-GCM-SHA256')[0]).toContain('DHE-RSA-AES128-GCM-SHA256 (DHE key exchange)');
    expect(one('ECDHE-PSK-CHACHA20-POLY1305')[0]).toContain('ECDHE-PSK-CHACHA20-POLY1305 (PSK authentication, ECDHE-PSK key exchange)');
    // AEAD but on no profile: CCM, CCM8 (an 8-byte tag), ARIA-GCM.
    expect(one('ECDHE+AESCCM')[0]).toContain('ECDHE-ECDSA-AES128-CCM8 (not AES-GCM or ChaCha20-Poly1305)');
    expect(one('ECDHE-ARIA256-GCM-SHA384')[0]).toContain('ECDHE-ARIA256-GCM-SHA384 (not AES-GCM or ChaCha20-Poly1305)');
    // Keywords are judged by what they expand to: HIGH holds DHE, PSK and CBC suites.
    expect(one('HIGH:!aNULL')[0]).toMatch(/"HIGH:!aNULL" gives suites that are not ECDHE with an AEAD cipher: DHE-DSS-AES256-GCM-SHA384 \(DSS authentication, DHE key exchange\)/);
    // The security level: one issue for it, one for the suites it let in.
    expect(one('ECDHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0')).toEqual([
      'test.yaml:12:12: tls.ciphers: "@SECLEVEL=0" is refused: mailfront runs OpenSSL at security level 2 (its certificate checks assume it); remove it',
    ]);
    expect(one('ALL:@SECLEVEL=0')).toHaveLength(2);
    expect(one('NO-SUCH-SUITE')).toEqual([`test.yaml:12:12: tls.ciphers: "NO-SUCH-SUITE" is refused by OpenSSL ${v}: no cipher match`]);
    // What is taken: ECDHE, authenticated, AEAD; also as keywords; and the profiles.
    for (const ok of ['ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305', 'ECDHE+AESGCM:ECDHE+CHACHA20', 'ECDHE+AESGCM:@SECLEVEL=2', 'intermediate']) {
      expect(parseConfig(MINIMAL + `tls: {ciphers: "${ok}"}\n`, 'test.yaml').tls.ciphers, ok).toBe(ok === 'intermediate' ? INTERMEDIATE_CIPHERS : ok);
    }
  });

  it('tls.ciphersuites: TLS_AES_128_CCM_8_SHA256 refused with the reason; TLS_AES_128_CCM_SHA256 taken', () => {
    expect(errorsOf(MINIMAL + 'tls: {ciphersuites: "TLS_AES_256_GCM_SHA384:TLS_AES_128_CCM_8_SHA256"}\n')).toEqual([
      'test.yaml:11:21: tls.ciphersuites: TLS_AES_128_CCM_8_SHA256 is refused: its 8-byte tag is marked not recommended for TLS 1.3 (RFC 8447); use TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256',
    ]);
    expect(parseConfig(MINIMAL + 'tls: {ciphersuites: "TLS_AES_128_CCM_SHA256"}\n', 'test.yaml').tls.ciphersuites).toBe('TLS_AES_128_CCM_SHA256');
  });

  it('tls.record_layer: mailfront by default, openssl the way back, anything else refused with the choices', () => {
    expect(parseConfig(MINIMAL, 'test.yaml').tls.recordLayer).toBe('mailfront');
    expect(parseConfig(MINIMAL + 'tls: {record_layer: openssl}\n', 'test.yaml').tls.recordLayer).toBe('openssl');
    expect(errorsOf(MINIMAL + 'tls: {record_layer: kernel}\n')).toEqual(['test.yaml:11:21: tls.record_layer: "kernel" is not one of mailfront, openssl']);
  });

  it('YAML syntax error with its line', () => {
    const lines = errorsOf('listeners:\n  - name: a\n    listen: [1.2.3.4:1\nbackends: {}\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^test\.yaml:4:1: \(document\): YAML syntax: /);
    expect(errorsOf('a: 1\na: 2\n')[0]).toMatch(/^test\.yaml:2:1: \(document\): YAML syntax: Map keys must be unique/);
  });

  it('an empty file or a top-level list', () => {
    expect(errorsOf('')).toEqual(['test.yaml:1:1: (document): the file is empty: it needs at least listeners, backends and certificates']);
    expect(errorsOf('- a\n')[0]).toMatch(/the top level must be a mapping/);
  });

  it('wildcards other than one leftmost label', () => {
    const text = MINIMAL + 'routes:\n  - {sni: "mail.*.org", backends: {imaps: cyrus}}\n  - {sni: "*", backends: {imaps: cyrus}}\n  - {sni: "**.x.org", backends: {imaps: cyrus}}\n';
    const lines = errorsOf(text);
    expect(lines).toHaveLength(3);
    expect(lines[0]).toBe('test.yaml:12:11: routes[0].sni: "mail.*.org": only a whole leftmost label can be a wildcard, as in "*.example.org"');
    expect(lines[1]).toMatch(/^test\.yaml:13:11: routes\[1\]\.sni: /);
    expect(lines[2]).toMatch(/^test\.yaml:14:11: routes\[2\]\.sni: /);
  });

  it('several errors at once, one per line, in file order', () => {
    const text = `certificates:
  pem_dir: [/x]
listeners:
  - name: a
    protocol: imapx
    listen: ["0.0.0.0:993"]
    backend: nowhere
  - name: a
    protocol: imap
    listen: ["0.0.0.0:993"]
    backend: b
backends:
  b: {servers: ["127.0.0.1:143"], balanse: first}
timeouts: {idle: 31}
tls: {min_version: TLSv1.1}
`;
    expect(errorsOf(text)).toEqual([
      'test.yaml:1:1: certificates: no certificate source: list at least one of certificates.letsencrypt, certificates.pem_dirs, certificates.pairs',
      'test.yaml:2:3: certificates.pem_dir: unknown key "pem_dir" (did you mean "pem_dirs"?)',
      'test.yaml:5:15: listeners[0].protocol: "imapx" is not one of imaps, pop3s, imap, pop3, managesieve',
      'test.yaml:7:14: listeners[0].backend: no backend named "nowhere" (backends: b)',
      'test.yaml:8:11: listeners[1].name: duplicate listener name "a" (also listeners[0])',
      'test.yaml:10:14: listeners[1].listen[0]: "0.0.0.0:993" is already used by listeners[0]',
      'test.yaml:13:35: backends.b.balanse: unknown key "balanse" (did you mean "balance"?)',
      'test.yaml:14:18: timeouts.idle: a duration needs a unit: write "31s" or "31ms" (units: ms, s, m, h)',
      'test.yaml:15:20: tls.min_version: TLSv1.1 is refused: SSL, TLS 1.0 and TLS 1.1 are broken and deprecated (RFC 8996); use TLSv1.2 or TLSv1.3',
    ]);
  });

  it('other checks: sieve_capabilities only on managesieve, limits, workers, metrics', () => {
    const text = MINIMAL.replace('    backend: cyrus', '    backend: cyrus\n    sieve_capabilities: [\'"VERSION" "1.0"\']') +
      'limits: {line_bytes: 100, connections: 1.5}\nworkers: 0\nmetrics: {listen: "127.0.0.1"}\n';
    expect(errorsOf(text)).toEqual([
      'test.yaml:8:5: listeners[0].sieve_capabilities: only a managesieve listener takes sieve_capabilities',
      'test.yaml:12:22: limits.line_bytes: 100 is out of range (512..1048576)',
      'test.yaml:12:40: limits.connections: expected a whole number of connections, got number 1.5',
      'test.yaml:13:10: workers: expected auto or a whole number 1..1024, got number 0',
      'test.yaml:14:19: metrics.listen: "127.0.0.1": expected "ip:port" or "[v6]:port" (the port is missing)',
    ]);
  });
});

describe('loadConfig', () => {
  it('reads a file and reports a missing one as MF_CONFIG_READ', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mf-config-'));
    const file = path.join(dir, 'mailfront.yaml');
    writeFileSync(file, MINIMAL);
    expect((await loadConfig(file)).listeners[0]!.name).toBe('imaps');
    const missing = path.join(dir, 'nope.yaml');
    const err = await loadConfig(missing).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MailfrontError);
    expect((err as MailfrontError).code).toBe('MF_CONFIG_READ');
    expect((err as Error).message).toBe(`${missing}: cannot read the configuration: no such file (ENOENT)`);
    const dirErr = await loadConfig(dir).catch((e: unknown) => e);
    expect((dirErr as MailfrontError).code).toBe('MF_CONFIG_READ');
  });
});

describe('helpers', () => {
  it('parseDuration', () => {
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('10s')).toBe(10_000);
    expect(parseDuration('31m')).toBe(1_860_000);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration(10)).toMatch(/needs a unit/);
    expect(parseDuration('0s')).toMatch(/longer than zero/);
    expect(parseDuration('30d')).toMatch(/not a duration/);
  });

  it('suggestKey', () => {
    const keys = ['letsencrypt', 'pem_dirs', 'pairs', 'default', 'unknown_sni', 'watch'];
    expect(suggestKey('cert_dir', keys)).toBe('pem_dirs');
    expect(suggestKey('pemdirs', keys)).toBe('pem_dirs');
    expect(suggestKey('pemDirs', keys)).toBe('pem_dirs');
    expect(suggestKey('unknownSni', keys)).toBe('unknown_sni');
    expect(suggestKey('pair', keys)).toBe('pairs');
    expect(suggestKey('zzz', keys)).toBeUndefined();
  });
});

describe('accept_proxy and trusted_proxies', () => {
  const withListener = (extra: string) =>
    MINIMAL.replace('    backend: cyrus\n', `    backend: cyrus\n${extra}`);

  it('defaults to off; takes CIDR blocks (a bare address is one host)', () => {
    expect(parseConfig(MINIMAL, 'p.yaml').listeners[0]).toMatchObject({ acceptProxy: false, trustedProxies: [] });
    const c = parseConfig(withListener('    accept_proxy: true\n    trusted_proxies: ["10.0.0.0/8", 127.0.0.1, "::1/128", "2001:db8::/32"]\n'), 'p.yaml');
    expect(c.listeners[0]).toMatchObject({ acceptProxy: true, trustedProxies: ['10.0.0.0/8', '127.0.0.1/32', '::1/128', '2001:db8::/32'] });
    expect(configWarnings(c).filter((w) => w.includes('proxies'))).toEqual([]);
  });

  it('refuses accept_proxy without trusted_proxies, at the key', () => {
    const e = errorsOf(withListener('    accept_proxy: true\n'), 'p.yaml');
    expect(e).toEqual([expect.stringMatching(/^p\.yaml:8:19: listeners\[0\]\.accept_proxy: accept_proxy needs trusted_proxies/)]);
    expect(errorsOf(withListener('    accept_proxy: true\n    trusted_proxies: []\n'))[0]).toMatch(/accept_proxy needs trusted_proxies/);
  });

  it('validates each block with its line, and suggests the network for host bits', () => {
    const e = errorsOf(withListener('    accept_proxy: true\n    trusted_proxies:\n      - 10.0.0.0/8\n      - 10.1.2.3/8\n      - 10.0.0.0/33\n      - example.org\n'), 'p.yaml');
    expect(e).toEqual([
      expect.stringMatching(/^p\.yaml:11:9: listeners\[0\]\.trusted_proxies\[1\]: "10\.1\.2\.3\/8" has bits set past its \/8 prefix \(did you mean "10\.0\.0\.0\/8"\?\)/),
      expect.stringMatching(/^p\.yaml:12:9: listeners\[0\]\.trusted_proxies\[2\]: "10\.0\.0\.0\/33": the prefix length must be 0\.\.32/),
      expect.stringMatching(/^p\.yaml:13:9: listeners\[0\]\.trusted_proxies\[3\]: "example\.org" is not an address block/),
    ]);
    expect(errorsOf(withListener('    accept_proxy: yes please\n    trusted_proxies: [10.0.0.0/8]\n'))[0]).toMatch(/accept_proxy: expected true or false/);
  });

  it('warns about trusted_proxies without accept_proxy', () => {
    const c = parseConfig(withListener('    trusted_proxies: [10.0.0.0/8]\n'), 'p.yaml');
    expect(configWarnings(c).filter((w) => w.includes('proxies'))).toEqual(['listeners imaps: trusted_proxies has no effect without accept_proxy: true']);
  });

  it('reaches the snapshot', async () => {
    const { buildSnapshot } = await import('../../src/snapshot.js');
    const c = parseConfig(withListener('    accept_proxy: true\n    trusted_proxies: [10.0.0.0/8]\n'), 'p.yaml');
    const s = buildSnapshot(c, { contexts: [], exact: {}, wildcard: {}, defaultContext: 0 }, undefined);
    expect(s.listeners[0]).toMatchObject({ acceptProxy: true, trustedProxies: ['10.0.0.0/8'] });
  });
});

describe('tls.groups', () => {
  const withGroups = (g: string) => MINIMAL + `tls:\n  groups: ${g}\n`;

  it('defaults to the hybrid group first where the library has ML-KEM, classical groups elsewhere', () => {
    expect(parseConfig(MINIMAL, 'm.yaml', OPENSSL_35).tls.groups).toBe('X25519MLKEM768:X25519:P-256');
    expect(parseConfig(MINIMAL, 'm.yaml', OPENSSL_30).tls.groups).toBe('X25519:P-256');
  });

  it('takes a list the library has, as written', () => {
    expect(parseConfig(withGroups('X25519:P-384'), 'm.yaml', OPENSSL_30).tls.groups).toBe('X25519:P-384');
    expect(parseConfig(withGroups('X25519MLKEM768'), 'm.yaml', OPENSSL_35).tls.groups).toBe('X25519MLKEM768');
  });

  it('refuses a group the library lacks, naming the group, the OpenSSL version and the line', () => {
    const [line, ...rest] = errorsOf(withGroups('X25519MLKEM768:X25519'), 'm.yaml', OPENSSL_30);
    expect(rest).toEqual([]);
    expect(line).toBe(
      'm.yaml:12:11: tls.groups: group "X25519MLKEM768" is not offered by OpenSSL 3.0.19, the library mailfront runs on: ML-KEM groups need OpenSSL 3.5 or later (Node 22.20+, 24, 26)',
    );
    expect(errorsOf(withGroups('X25519:brainpoolP999'), 'm.yaml', OPENSSL_35)[0]).toMatch(/group "brainpoolP999" is not offered by OpenSSL 3\.5\.9/);
  });

  it('refuses what is not a plain list of names', () => {
    expect(errorsOf(withGroups('"X25519::P-256"'), 'm.yaml', OPENSSL_35)[0]).toMatch(/"" is not a group name/);
    expect(errorsOf(withGroups('"?X25519MLKEM768:X25519"'), 'm.yaml', OPENSSL_35)[0]).toMatch(/"\?X25519MLKEM768" is not a group name/);
    expect(errorsOf(withGroups('[X25519, P-256]'), 'm.yaml', OPENSSL_35)[0]).toMatch(/one OpenSSL list separated by ":", e\.g\. "X25519:P-256"/);
    expect(errorsOf(withGroups('X25519:x25519'), 'm.yaml', OPENSSL_35)[0]).toMatch(/group "x25519" is listed twice/);
    expect(errorsOf(withGroups('""'), 'm.yaml', OPENSSL_35)[0]).toMatch(/expected an OpenSSL group list/);
  });

  it('is checked against the OpenSSL this process runs on by default', () => {
    const lib = tlsLibrary();
    const hybrid = lib.hasGroup('X25519MLKEM768');
    expect(hybrid).toBe(lib.versionNumber >= 0x30500000);
    expect(parseConfig(MINIMAL, 'm.yaml').tls.groups).toBe(hybrid ? 'X25519MLKEM768:X25519:P-256' : 'X25519:P-256');
    if (!hybrid) expect(errorsOf(withGroups('X25519MLKEM768'))[0]).toMatch(/is not offered by OpenSSL 3\.[0-4]\./);
    else expect(parseConfig(withGroups('X25519MLKEM768'), 'm.yaml').tls.groups).toBe('X25519MLKEM768');
  });
});

describe('runtimeSupport', () => {
  const at = new Date('2026-11-30T00:00:00Z');
  it('flags Node 20 and OpenSSL 3.0 after their end of life, with the versions', () => {
    const r = runtimeSupport(OPENSSL_30, 'v20.20.2', at);
    expect(r.summary).toBe('Node v20.20.2 with OpenSSL 3.0.19');
    expect(r.problems).toEqual([
      'OpenSSL 3.0.19 is out of support (OpenSSL 3.0 ended on 2026-09-07): every TLS connection runs on a library that gets no more security fixes',
      'Node v20.20.2 is out of support (Node 20 ended on 2026-04-30)',
    ]);
    expect(r.advice).toMatch(/run mailfront on Node 24/);
  });
  it('says nothing about Node 24 with OpenSSL 3.5, nor before an end of life', () => {
    expect(runtimeSupport(OPENSSL_35, 'v24.22.3', at)).toEqual({ summary: 'Node v24.22.3 with OpenSSL 3.5.9', problems: [] });
    expect(runtimeSupport(OPENSSL_30, 'v20.20.2', new Date('2026-04-01')).problems).toEqual([]);
    expect(runtimeSupport(OPENSSL_35, 'v22.23.5', at).problems).toEqual([]);
  });
  it('reads the version from the number when the text has none', () => {
    expect(opensslShortVersion({ version: 'custom build', versionNumber: 0x30000130, hasGroup: () => false, cipherList: () => ({ error: '' }) })).toBe('3.0.19');
  });
});

describe('limits per client network and login tracking', () => {
  it('defaults: 10 failures in 10m ban for 15m, 600 connections a minute, IPv6 /64, nothing exempt, user names logged', () => {
    const c = parseConfig(MINIMAL, 'm.yaml');
    expect(c.limits).toMatchObject({
      loginTracking: true,
      loginFailures: { count: 10, windowMs: 600_000, banMs: 900_000 },
      connectionRate: 600,
      ipv6Prefix: 64,
      exempt: [],
    });
    expect(c.log.usernames).toBe(true);
  });

  it('reads short test durations, exempt blocks, off switches and log.usernames', () => {
    const c = parseConfig(
      MINIMAL + 'limits:\n  login_failures: {count: 3, window: 10s, ban: 3s}\n  connection_rate: 5\n  ipv6_prefix: 56\n  exempt: ["127.0.0.1", "2001:db8::/48"]\nlog: {usernames: false}\n',
      'm.yaml',
    );
    expect(c.limits).toMatchObject({ loginFailures: { count: 3, windowMs: 10_000, banMs: 3000 }, connectionRate: 5, ipv6Prefix: 56, exempt: ['127.0.0.1/32', '2001:db8::/48'] });
    expect(c.log.usernames).toBe(false);
    const off = parseConfig(MINIMAL + 'limits: {login_failures: off, connection_rate: off, login_tracking: false}\n', 'm.yaml');
    expect(off.limits).toMatchObject({ loginTracking: false, loginFailures: { count: 0 }, connectionRate: 0 });
    expect(configWarnings(off).filter((w) => w.includes('login'))).toEqual([]);
    const trackingOff = parseConfig(MINIMAL + 'limits: {login_tracking: false}\n', 'm.yaml');
    expect(configWarnings(trackingOff)).toContain('limits.login_failures has no effect with limits.login_tracking: false (no login is seen, so none fails)');
  });

  it('refuses bad values with FILE:LINE:COL and the key path', () => {
    const text = MINIMAL +
      'limits:\n  login_failures: {count: -1, window: 10, ban: 15x, bans: 3}\n  connection_rate: fast\n  ipv6_prefix: 129\n  exempt: ["10.0.0.1/8"]\n  login_tracking: yes\nlog: {usernames: "no"}\n';
    expect(errorsOf(text)).toEqual([
      'test.yaml:12:27: limits.login_failures.count: -1 is out of range (0..1000000)',
      'test.yaml:12:39: limits.login_failures.window: a duration needs a unit: write "10s" or "10ms" (units: ms, s, m, h)',
      'test.yaml:12:48: limits.login_failures.ban: "15x" is not a duration (examples: 500ms, 10s, 31m, 1h)',
      'test.yaml:12:53: limits.login_failures.bans: unknown key "bans" (did you mean "ban"?)',
      'test.yaml:13:20: limits.connection_rate: expected a whole number of new connections per minute (or off), got "fast"',
      'test.yaml:14:16: limits.ipv6_prefix: 129 is out of range (16..128)',
      'test.yaml:15:12: limits.exempt[0]: "10.0.0.1/8" has bits set past its /8 prefix (did you mean "10.0.0.0/8"?)',
      'test.yaml:16:19: limits.login_tracking: expected true or false, got "yes"',
      'test.yaml:17:18: log.usernames: expected true or false, got "no"',
    ]);
  });
});
