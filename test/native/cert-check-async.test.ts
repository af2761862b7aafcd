// checkCertificatesAsync (native/cert_check_async.cc): the certificate check off the JS thread.
// The JS thread runs while a check is in flight (held by the testing addon's hook, so that the
// order is certain, not timed); the results are checkCertificates' own; and a check in flight
// when its environment goes away (a worker terminated) or the process exits ends cleanly.
import { spawn } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { loadAddon, type CertCheck } from '../../src/native.js';
import { loadTestingAddon, testingAddonPath } from '../helpers/testing-addon.js';
import { checkPair, makePki } from './harness.js';

const pki = makePki();
afterAll(() => pki.cleanup());
const testing = loadTestingAddon();
afterEach(() => testing.testHoldChecks(false));

const certsOf = (pem: string) => pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g) ?? [];
// A passed pair, a key of another certificate, a certificate that does not parse, a key that
// does not parse, a pair given by its files, and files that cannot be read (left to read.ts).
const inputs = () => [
  { certs: certsOf(pki.a.fullchainPem), keys: [pki.a.keyPem] },
  { certs: certsOf(pki.b.fullchainPem), keys: [pki.a.keyPem] },
  { certs: ['-----BEGIN CERTIFICATE-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE-----\n'], keys: [pki.def.keyPem] },
  { certs: certsOf(pki.def.fullchainPem), keys: ['-----BEGIN PRIVATE KEY-----\nZ2FyYmFnZQ==\n-----END PRIVATE KEY-----\n'] },
  { certPath: pki.w.fullchainPath, keyPath: pki.w.keyPath, combined: false },
  { certPath: `${pki.dir}/missing.pem`, keyPath: `${pki.dir}/missing.key`, combined: false },
];
// The handles differ from call to call; everything else must not.
const facts = (checks: CertCheck[]) => checks.map((c) => ('pair' in c ? { ...c, pair: typeof c.pair } : c));

describe('checkCertificatesAsync', () => {
  it('the JS thread runs while the check threads are held; the Promise settles only once they are released', async () => {
    testing.testHoldChecks(true);
    let settled = false;
    const check = testing.checkCertificatesAsync(inputs()).then((r) => ((settled = true), r));
    // A timer callback is a turn of the event loop: it runs while the check waits.
    const timerRan = await new Promise<boolean>((resolve) => setTimeout(() => resolve(true), 1));
    expect(timerRan).toBe(true);
    expect(settled).toBe(false);
    testing.testHoldChecks(false);
    const results = await check;
    expect(settled).toBe(true);
    expect(results.map((r) => ('error' in r ? r.error : 'unread' in r ? 'unread' : r.sanDns.join(',')))).toEqual([
      'mail.a.example,a.example',
      'mismatch',
      'cert-parse',
      'key-parse',
      '*.w.example',
      'unread',
    ]);
  });

  it("gives checkCertificates' results, in the same order, messages' details included", async () => {
    const addon = loadAddon();
    const byAsync = await addon.checkCertificatesAsync(inputs());
    const bySync = addon.checkCertificates(inputs());
    expect(facts(byAsync)).toEqual(facts(bySync));
    expect(byAsync[2]).toMatchObject({ error: 'cert-parse', at: 0, detail: expect.any(String) });
    // A passed pair's handle goes into a snapshot like checkCertificates' (checked_pair_of).
    expect(checkPair(pki.a.fullchainPem, pki.a.keyPem)).toMatchObject({ sanDns: ['mail.a.example', 'a.example'] });
  });

  it('a malformed argument throws at once, as checkCertificates does; an empty list resolves to []', async () => {
    const addon = loadAddon();
    expect(() => addon.checkCertificatesAsync([{} as never])).toThrow(/pairs\[0\] must be \{certs, keys\}/);
    expect(() => addon.checkCertificatesAsync([{ certPath: '/x' } as never])).toThrow(/pairs\[0\] has a certPath but no keyPath/);
    await expect(addon.checkCertificatesAsync([])).resolves.toEqual([]);
  });

  it('a worker terminated while its check is held: the thread is stopped and joined, nothing settles in a gone environment, later checks run', async () => {
    testing.testHoldChecks(true);
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       const m = { exports: {} };
       process.dlopen(m, workerData.addon);
       m.exports.checkCertificatesAsync(workerData.pairs).then(() => parentPort.postMessage('settled'), () => parentPort.postMessage('rejected'));
       parentPort.postMessage('started');`,
      { eval: true, workerData: { addon: testingAddonPath(), pairs: inputs() } },
    );
    const messages: string[] = [];
    await new Promise<void>((resolve, reject) => {
      worker.on('message', (m: string) => (messages.push(m), m === 'started' && resolve()));
      worker.on('error', reject);
    });
    // Still held: terminate() returns only once the finalizer has stopped and joined the thread.
    await worker.terminate();
    expect(messages).toEqual(['started']);
    testing.testHoldChecks(false);
    expect(await testing.checkCertificatesAsync(inputs().slice(0, 1))).toMatchObject([{ sanDns: ['mail.a.example', 'a.example'] }]);
  });

  // process.exit() (the SIGTERM handler's) frees no environment: the atexit hook stops the checks.
  const exitDuringCheck = (held: boolean, pairs: unknown[]) =>
    new Promise<{ code: number | null; signal: string | null; out: string; err: string }>((resolve) => {
      const script = `
        const m = { exports: {} };
        process.dlopen(m, ${JSON.stringify(testingAddonPath())});
        m.exports.testHoldChecks(${held});
        const pairs = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));
        process.on('SIGTERM', () => { console.log('exiting'); process.exit(0); });
        m.exports.checkCertificatesAsync(pairs).then(() => console.log('settled'));
        setImmediate(() => process.kill(process.pid, 'SIGTERM'));`;
      const child = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d));
      child.stderr.on('data', (d: Buffer) => (err += d));
      child.on('exit', (code, signal) => resolve({ code, signal, out, err }));
      child.stdin.end(JSON.stringify(pairs));
    });

  it('SIGTERM -> process.exit(0) while a check is held: exits 0, no crash, no hang, never settles', async () => {
    expect(await exitDuringCheck(true, inputs())).toEqual({ code: 0, signal: null, out: 'exiting\n', err: '' });
  });

  it('SIGTERM -> process.exit(0) while thousands of pairs are being parsed on the check threads: exits 0', async () => {
    const pairs = Array.from({ length: 3000 }, () => inputs()[0]);
    const r = await exitDuringCheck(false, pairs);
    expect({ code: r.code, signal: r.signal, err: r.err }).toEqual({ code: 0, signal: null, err: '' });
    expect(r.out.startsWith('exiting\n')).toBe(true);
  });
});
