// testssl.sh against the imaps, pop3s, imap (STARTTLS) and pop3 (STARTTLS)
// listeners of a proxy built from a real config (shipped TLS defaults).
// Slow (a few minutes): opt-in with MF_TESTSSL=1 (vitest.config.ts collects
// this file only then). Reports: docs/testssl/*.txt.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePorts, makeTwoDomainPki, ROOT } from '../helpers/mailfront.js';
import { echoBackends, hardeningConfig, startInProcess, WORK } from './util.js';
import type { Ports } from './util.js';


interface Finding { id: string; severity: string; finding: string }

function runTestssl(name: string, port: number, starttls?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('bash', [path.join(ROOT, 'test/hardening/testssl.sh'), name, String(port), ...(starttls ? [starttls] : [])],
      { timeout: 660_000, killSignal: 'SIGKILL' }, (err, _o, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve()));
  });
}

// Not about TLS (HTTP-only) or about our throwaway test CA.
const IGNORE = /^(BREACH|scanTime|engine_problem|cert_|chain_of_trust|overall_grade|DNS_CAArecord|OCSP|service)/;

describe('testssl.sh', () => {
  it('reports no vulnerability and no weak protocol or cipher on imaps, pop3s, imap and pop3 (STARTTLS)', async () => {
    const dir = mkdtempSync('/tmp/mf-hard-testssl-');
    const two = makeTwoDomainPki(dir);
    const b = await echoBackends();
    const [imaps, pop3s, imap, pop3, sieve] = (await freePorts(5)) as [number, number, number, number, number];
    const ports: Ports = { imaps, pop3s, imap, pop3, sieve };
    const cfg = path.join(dir, 'testssl.yaml');
    writeFileSync(cfg, hardeningConfig({ letsencrypt: two.letsencrypt, ports, b }));
    const px = await startInProcess(cfg, 2);
    const bad: Record<string, Finding[]> = {};
    try {
      const runs: [string, number, string | undefined][] = [['imaps', imaps, undefined], ['pop3s', pop3s, undefined], ['imap', imap, 'imap'], ['pop3', pop3, 'pop3']];
      await Promise.all(runs.map(([n, p, s]) => runTestssl(n, p, s)));
      for (const [n] of runs) {
        const all = JSON.parse(readFileSync(path.join(WORK, 'testssl', `${n}.json`), 'utf8')) as Finding[];
        const get = (id: string) => all.find((f) => f.id === id)?.finding ?? '(missing)';
        for (const p of ['SSLv2', 'SSLv3', 'TLS1', 'TLS1_1']) expect(get(p), `${n} ${p}`).toMatch(/not offered/);
        expect(get('TLS1_2'), n).toMatch(/offered/);
        expect(get('TLS1_3'), n).toMatch(/offered/);
        for (const c of ['cipherlist_NULL', 'cipherlist_aNULL', 'cipherlist_EXPORT', 'cipherlist_LOW', 'cipherlist_3DES_IDEA']) expect(get(c), `${n} ${c}`).toMatch(/not offered/);
        bad[n] = all.filter((f) => !IGNORE.test(f.id) && /^(LOW|MEDIUM|HIGH|CRITICAL)$/.test(f.severity));
        // Scan errors would hide findings.
        expect(all.filter((f) => f.id === 'scanProblem' || /^FATAL$/.test(f.severity)), n).toEqual([]);
      }
      expect(bad).toEqual({ imaps: [], pop3s: [], imap: [], pop3: [] });
    } finally {
      px.stop();
      await b.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 700_000);
});
