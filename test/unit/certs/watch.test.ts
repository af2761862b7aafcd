import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, unlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeCA, issue, makeLetsEncryptTree, renewLineage, type CA, type Issued } from '../../helpers/pki.js';
import { watchCertificates } from '../../../src/certs/index.js';
import { watchTargets } from '../../../src/certs/watch.js';

let tmp: string;
let ca: CA;
const certs: Issued[] = [];

beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'mf-watch-'));
  ca = makeCA(path.join(tmp, 'ca'));
  for (let i = 0; i < 6; i++) certs.push(issue(ca, { names: [`n${i}.example.org`], dir: path.join(tmp, 'issued', `${i}`) }));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Wait until `pred` holds or `ms` pass. */
async function until(pred: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!pred() && Date.now() < end) await sleep(10);
}

describe('watchCertificates', () => {
  it('watches live/ and archive/ of a Let\'s Encrypt dir, and a plain dir as is', () => {
    const le = path.join(tmp, 'targets-le');
    makeLetsEncryptTree(le, { a: certs[0]! });
    expect(watchTargets(le)).toEqual([path.join(le, 'live'), path.join(le, 'archive')]);
    const pems = path.join(tmp, 'targets-pem');
    mkdirSync(pems);
    expect(watchTargets(pems)).toEqual([pems]);
    expect(watchTargets(path.join(tmp, 'nope'))).toEqual([]);
  });

  it('debounces 20 quick file changes into one callback', async () => {
    const dir = path.join(tmp, 'pems-burst');
    mkdirSync(dir);
    let calls = 0;
    const w = watchCertificates([dir], () => calls++, { debounceMs: 150 });
    try {
      await sleep(50);
      for (let i = 0; i < 20; i++) {
        writeFileSync(path.join(dir, `f${i % 5}.pem`), `change ${i}\n`);
        await sleep(5);
      }
      await until(() => calls > 0, 3000);
      await sleep(400); // nothing more may come
      expect(calls).toBe(1);
    } finally {
      w.close();
    }
  });

  it('gives one callback for a certbot renewal of several lineages (archive + live symlinks)', async () => {
    const le = path.join(tmp, 'le-renew');
    const lineages = Object.fromEntries(certs.map((c, i) => [`l${i}`, c]));
    makeLetsEncryptTree(le, lineages);
    let calls = 0;
    const w = watchCertificates([le], () => calls++, { debounceMs: 150 });
    try {
      await sleep(50);
      for (const [name, c] of Object.entries(lineages)) {
        renewLineage(le, name, c, 2);
        await sleep(20);
      }
      await until(() => calls > 0, 3000);
      await sleep(400);
      expect(calls).toBe(1);
      // A change in renewal/ (certbot rewrites it on every run) is not watched.
      writeFileSync(path.join(le, 'renewal', 'l0.conf'), 'version = 2.1.0\n');
      await sleep(400);
      expect(calls).toBe(1);
    } finally {
      w.close();
    }
  });

  it('waits while certbot holds its lock file, then calls back once', async () => {
    const le = path.join(tmp, 'le-lock');
    makeLetsEncryptTree(le, { a: certs[0]!, b: certs[1]! });
    const lock = path.join(le, '.certbot.lock');
    writeFileSync(lock, '');
    let calls = 0;
    const w = watchCertificates([le], () => calls++, { debounceMs: 80 });
    try {
      await sleep(50);
      renewLineage(le, 'a', certs[0]!, 2);
      await sleep(400); // several quiet periods: the lock holds the callback back
      renewLineage(le, 'b', certs[1]!, 2);
      await sleep(300);
      expect(calls).toBe(0);
      unlinkSync(lock);
      await until(() => calls > 0, 3000);
      await sleep(300);
      expect(calls).toBe(1);
    } finally {
      w.close();
    }
  });

  it('close() stops callbacks, and a missing dir is reported, not thrown', async () => {
    const dir = path.join(tmp, 'pems-close');
    mkdirSync(dir);
    const errors: string[] = [];
    let calls = 0;
    const w = watchCertificates([dir, path.join(tmp, 'missing')], () => calls++, { debounceMs: 50, onError: (_e, d) => errors.push(d) });
    expect(errors).toEqual([path.join(tmp, 'missing')]);
    writeFileSync(path.join(dir, 'x.pem'), 'x\n');
    w.close();
    await sleep(200);
    expect(calls).toBe(0);
  });
});
