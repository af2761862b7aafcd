// The addon for the tests only (binding.gyp target mailfront_testing, native/test_exports.cc):
// the data plane's pure parts (dialog, login parser, client networks, PROXY header reader and
// writer, CRC32C, CIDR match) for table tests. The production addon does not carry them, and
// the package does not ship this one. It sits next to the production addon under test:
// build/Release/mailfront_testing.so, or beside MAILFRONT_ADDON (scripts/sanitize.sh,
// scripts/test-node24.sh). A shared_library, not a *.node, so that node-gyp-build and
// prebuildify, which take the first *.node of build/Release, never pick it.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CertCheck, CertFiles, NativeBackend, Protocol } from '../../src/native.js';

export interface ProxyParseResult {
  status: 'done' | 'more' | 'malformed';
  /** Done: header bytes consumed. */
  length?: number;
  /** Done: LOCAL / UNKNOWN / non-IP family: the socket's own addresses stay. */
  local?: boolean;
  src?: string;
  dst?: string;
  /** Malformed: why. */
  why?: string;
}

export interface TestingAddon {
  /** The pre-TLS dialog on chunks of client bytes: what mailfront answers, and what comes next. */
  testDialog(protocol: string, capabilities: string, chunks: string[], maxLine?: number): { output: string; next: string };
  /** The PROXY header reader on one buffer. */
  testProxyParse(data: Buffer): ProxyParseResult;
  /** The PROXY header writer for "ip:port" addresses (tls: what v2-ssl carries). */
  testProxyHeader(version: NativeBackend['proxyProtocol'], client: string, local: string, tls?: { version?: string; cipher?: string; sni?: string }): Buffer;
  /** CRC32C (Castagnoli) of the bytes. */
  testCrc32c(data: Buffer): number;
  /** Is "ip:port" inside one of the CIDR blocks? Throws on a bad block. */
  testCidrMatch(cidrs: string[], address: string): boolean;
  /** The login parser on steps of client ("c") and server ("s") bytes. */
  testLogin(protocol: Protocol, steps: ['c' | 's', string | Buffer][], bound?: number): { outcomes: { result: string; user: string; mech: string }[]; state: 'watching' | 'authenticated' | 'bound' };
  /** The client network of "ip:port" as logged, null for a bad address. */
  testClientNetwork(address: string, ipv6Prefix: number): string | null;
  /** The TLS 1.3 traffic key and IV of a secret (suite: IANA id, 0x1301..0x1303), and the next secret (KeyUpdate). */
  testTrafficKey(suite: number, secret: Buffer): { key: Buffer; iv: Buffer; next: Buffer };
  /** The production checkCertificatesAsync, with this library's own copy of the check's state (its memo, the hold below). */
  checkCertificatesAsync(pairs: ({ certs: (string | Buffer)[]; keys: (string | Buffer)[] } | CertFiles)[], append?: boolean): Promise<CertCheck[]>;
  /** While held, this library's checks wait before their first pair, until released or stopped (environment or process going away). */
  testHoldChecks(held: boolean): void;
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
let addon: TestingAddon | undefined;

export function testingAddonPath(): string {
  const main = process.env.MAILFRONT_ADDON;
  return path.join(main ? path.dirname(main) : path.join(root, 'build/Release'), 'mailfront_testing.so');
}

export function loadTestingAddon(): TestingAddon {
  if (!addon) {
    const m = { exports: {} as TestingAddon };
    process.dlopen(m, testingAddonPath());
    addon = m.exports;
  }
  return addon;
}
