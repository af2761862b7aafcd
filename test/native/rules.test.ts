// The rules the control plane shares with the data plane (issue 15: one rule
// in one place), run from the shared case tables in test/cases/ against every
// function that still touches each rule: the native export, and the
// TypeScript code that words or extends it.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadAddon, type NativeAddress } from '../../src/native.js';
import { normalizeHostName, normalizeName } from '../../src/certs/names.js';
import { resolve } from '../../src/certs/index-names.js';
import { parseCidr } from '../../src/config/cidr.js';
import { parseSniPattern } from '../../src/config/hostnames.js';
import { connectTarget, parseListenAddress, parseServerAddress } from '../../src/config/address.js';
import { loadTestingAddon } from '../helpers/testing-addon.js';

const casesDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../cases');
function table<T>(name: string): T {
  return JSON.parse(readFileSync(path.join(casesDir, name), 'utf8')) as T;
}

type Case<W> = { input: string; want: W; why: string };
const addon = loadAddon();

describe('host names (hostnames.json)', () => {
  const t = table<{ hostNames: Case<string | null>[]; patterns: Case<string | null>[] }>('hostnames.json');
  it.each(t.hostNames.map((c) => [c.why, c] as const))('native normalizeHostName: %s', (_, c) => {
    expect(addon.normalizeHostName(c.input)).toBe(c.want);
  });
  it.each(t.hostNames.map((c) => [c.why, c] as const))('certs/names normalizeHostName and config dns names: %s', (_, c) => {
    expect(normalizeHostName(c.input)).toBe(c.want);
    // A route pattern without a wildcard is a host name.
    const route = parseSniPattern(c.input);
    if (!c.input.includes('*')) expect(typeof route === 'string' ? route : null).toBe(c.want);
  });
  it.each(t.patterns.map((c) => [c.why, c] as const))('certs/names normalizeName: %s', (_, c) => {
    expect(normalizeName(c.input)).toBe(c.want);
  });
  it.each(t.patterns.filter((c) => c.input.trim() === c.input).map((c) => [c.why, c] as const))('config route pattern: %s', (_, c) => {
    const r = parseSniPattern(c.input);
    expect(typeof r === 'string' ? r : null).toBe(c.want);
  });
});

describe('CIDR blocks (cidr.json)', () => {
  type CidrCase = { input: string; native: { family: 4 | 6; bytes: number[]; prefix: number } | null; config: string | { error: string }; why: string };
  const t = table<{ cases: CidrCase[] }>('cidr.json');
  it.each(t.cases.map((c) => [c.why, c] as const))('native parseCidr: %s', (_, c) => {
    expect(addon.parseCidr(c.input)).toEqual(c.native);
  });
  it.each(t.cases.map((c) => [c.why, c] as const))('config parseCidr: %s', (_, c) => {
    const r = parseCidr(c.input);
    if (typeof c.config === 'string') expect(r).toBe(c.config);
    else expect(typeof r === 'string' ? r : r.error).toContain(c.config.error);
  });
  it('the data plane matches what the configuration accepts', () => {
    for (const c of t.cases) {
      if (typeof c.config !== 'string') continue;
      // testCidrMatch throws on a block the data plane cannot read.
      expect(() => loadTestingAddon().testCidrMatch([c.config as string], '192.0.2.1:1'), c.input).not.toThrow();
    }
  });
});

describe('addresses (hostport.json)', () => {
  const t = table<{ cases: Case<NativeAddress>[] }>('hostport.json');
  it.each(t.cases.map((c) => [c.why, c] as const))('native parseAddress: %s', (_, c) => {
    expect(addon.parseAddress(c.input)).toEqual(c.want);
  });
  it.each(t.cases.map((c) => [c.why, c] as const))('config listen and server addresses: %s', (_, c) => {
    const w = c.want;
    const listen = parseListenAddress(c.input);
    const server = parseServerAddress(c.input);
    const tcp = 'kind' in w && w.kind === 'tcp';
    expect(typeof listen === 'string' ? 'refused' : listen).toEqual(tcp ? w : 'refused');
    const serverOk = ('kind' in w && w.kind === 'unix') || (tcp && w.port >= 1);
    expect(typeof server === 'string' ? 'refused' : server).toEqual(serverOk ? w : 'refused');
    // A refusal names the text it refuses.
    if (typeof server === 'string') expect(server).toContain(`"${c.input}"`);
    if (serverOk) expect(connectTarget(c.input)).toEqual('path' in w ? { path: w.path } : { host: (w as { host: string }).host, port: (w as { port: number }).port });
  });
});

describe('SNI lookup (sni-lookup.json)', () => {
  type Lookup = { index: { exact: Record<string, number>; wildcard: Record<string, number> }; cases: { name: string; want: { context: number; match: string } | null; why: string }[] };
  const t = table<Lookup>('sni-lookup.json');
  // The certificate store builds its tables without a prototype; JSON.parse gives ordinary objects. Both must behave.
  const bare = (o: Record<string, number>) => Object.assign(Object.create(null) as Record<string, number>, o);
  const indexes = { 'store tables': { exact: bare(t.index.exact), wildcard: bare(t.index.wildcard) }, 'plain objects': t.index };
  for (const [kind, index] of Object.entries(indexes)) {
    it.each(t.cases.map((c) => [c.why, c] as const))(`native findContext, ${kind}: %s`, (_, c) => {
      expect(addon.findContext(index, c.name)).toEqual(c.want);
    });
  }
  it.each(t.cases.map((c) => [c.why, c] as const))('certs resolve: %s', (_, c) => {
    expect(resolve(indexes['store tables'], c.name)).toEqual(c.want ?? undefined);
  });
});

describe('PEM blocks (native pemBlocks, which read.ts and the check threads share)', () => {
  const blocks = (text: string) => addon.pemBlocks(Buffer.from(text, 'latin1')).map((b) => [b.label, text.slice(b.start, b.end), b.key]);
  it('finds each block from its BEGIN line to the first END of the same label, LF or CRLF', () => {
    const cert = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----';
    const key = '-----BEGIN EC PRIVATE KEY-----\r\nMHcC\r\n-----END EC PRIVATE KEY-----';
    expect(blocks(`junk\n${cert}\n${key}\n`)).toEqual([['CERTIFICATE', cert, false], ['EC PRIVATE KEY', key, true]]);
  });
  it('skips a BEGIN whose label is not upper-case letters, digits and spaces, or not at a line end', () => {
    expect(blocks('-----BEGIN cert-----\nx\n-----END cert-----\n-----BEGIN X----- trailing\n-----END X-----')).toEqual([]);
  });
  it('stops at a block without its END line', () => {
    expect(blocks('-----BEGIN PRIVATE KEY-----\nMIG\n-----END CERTIFICATE-----\n')).toEqual([]);
  });
  it('marks the four private-key labels, and no other', () => {
    const labels = ['PRIVATE KEY', 'RSA PRIVATE KEY', 'EC PRIVATE KEY', 'ENCRYPTED PRIVATE KEY', 'PUBLIC KEY', 'X509 CRL'];
    const text = labels.map((l) => `-----BEGIN ${l}-----\nAA\n-----END ${l}-----\n`).join('');
    expect(blocks(text).map((b) => b[2])).toEqual([true, true, true, true, false, false]);
  });
});
