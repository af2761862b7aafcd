// Key exchange through mailfront to a real Cyrus, on whichever Node runs the
// suite (npm test: the machine's; npm run test:node24: Node 24 with OpenSSL 3.5).
// A client offering only X25519MLKEM768 logs in where the library has ML-KEM;
// a classical-only client always does; the log line and the metric name the
// group; where ML-KEM is missing, a configured hybrid group stops the start.
import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CyrusInstance, startCyrus } from '../helpers/cyrus.js';
import {
  e2eConfig,
  e2ePorts,
  freePorts,
  type E2ePorts,
  type Mailfront,
  makeTwoDomainPki,
  openTls,
  startMailfront,
  type TwoDomainPki,
} from '../helpers/mailfront.js';
import { defaultGroups, HYBRID_GROUP, opensslShortVersion, runtimeSupport, tlsLibrary } from '../../src/tls-library.js';

const lib = tlsLibrary();
const hybrid = lib.hasGroup(HYBRID_GROUP);
let a: CyrusInstance;
let mf: Mailfront;
let pki: TwoDomainPki;
let ports: E2ePorts;
let metricsPort: number;
const tmp = mkdtempSync('/tmp/mf-e2e-groups-');

const config = (extra = '') =>
  e2eConfig({ letsencrypt: pki.letsencrypt, ports, a, extra }).replace('metrics: false', `metrics: {listen: "127.0.0.1:${metricsPort}"}`);

beforeAll(async () => {
  pki = makeTwoDomainPki(path.join(tmp, 'pki'));
  a = await startCyrus();
  ports = await e2ePorts();
  [metricsPort] = (await freePorts(1)) as [number];
  mf = await startMailfront(config());
});

afterAll(async () => {
  await mf?.kill();
  await a?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

/** IMAPS login and logout as alice, offering only <curve>; the connection's log line. */
async function loginOffering(curve: string) {
  const mark = mf.lines.length;
  const s = await openTls(ports.imaps, 'mail.example.com', pki.ca.rootPem, 10_000, { ecdhCurve: curve });
  const port = s.socket.localPort;
  await s.waitFor(/^\* OK .*Cyrus IMAP/m, 10_000);
  s.send('a1 LOGIN alice@example.com secret');
  await s.waitFor(/^a1 OK/m, 10_000);
  s.send('a2 LOGOUT');
  await s.waitFor(/^a2 OK/m, 10_000);
  await s.closed;
  return mf.waitForLog((l) => l.msg === 'connection closed' && String(l.client).endsWith(`:${port}`), 5000, mark);
}

async function groupCounts(): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const counts = new Map<string, number>();
  for (const m of text.matchAll(/^mailfront_tls_handshake_groups_total\{listener="imaps",group="([^"]+)"\} (\d+)$/gm)) counts.set(m[1]!, Number(m[2]));
  return counts;
}

describe(`key exchange on ${runtimeSupport(lib).summary}`, () => {
  it('logs the runtime and the groups it serves at start, and an out-of-support runtime as a warning', async () => {
    const ready = await mf.waitForLog((l) => l.msg === 'mailfront ready', 1000);
    expect(ready.node).toBe(process.version);
    expect(ready.groups).toBe(defaultGroups(lib));
    const warned = mf.lines.find((l) => String(l.msg).startsWith('runtime out of support'));
    if (runtimeSupport(lib).problems.length) {
      expect(warned?.level).toBe('warn');
      expect(String((warned!.problems as string[])[0])).toContain(`OpenSSL ${opensslShortVersion(lib)} is out of support`);
    } else {
      expect(warned).toBeUndefined();
    }
  });

  it('a classical-only client (X25519) logs in to Cyrus; the log line names the group', async () => {
    const line = await loginOffering('X25519');
    expect(line.group).toBe('X25519');
    expect(line.backend).toBe(`127.0.0.1:${a.imapPort}`);
  });

  it(`a client offering only ${HYBRID_GROUP} logs in where OpenSSL has ML-KEM; elsewhere that group is refused at start`, async () => {
    if (hybrid) {
      const line = await loginOffering(HYBRID_GROUP);
      expect(line.group).toBe(HYBRID_GROUP);
      expect(line.tls_version).toBe('TLSv1.3');
    } else {
      const refused = await startMailfront(config(`tls: {groups: "${HYBRID_GROUP}:X25519"}\n`)).then(
        () => undefined,
        (err: Error) => err.message,
      );
      expect(refused).toMatch(new RegExp(`tls\\.groups: group "${HYBRID_GROUP}" is not offered by OpenSSL ${opensslShortVersion(lib).replace(/\./g, '\\.')}`));
      expect(defaultGroups(lib)).not.toContain('MLKEM');
    }
  });

  it('the metric counts handshakes by group', async () => {
    const counts = await groupCounts();
    expect(counts.get('X25519')).toBeGreaterThanOrEqual(1);
    if (hybrid) expect(counts.get(HYBRID_GROUP)).toBeGreaterThanOrEqual(1);
    else expect(counts.has(HYBRID_GROUP)).toBe(false);
  });
});
