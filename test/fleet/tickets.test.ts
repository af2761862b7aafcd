// Two mailfront instances (two processes, as in a real fleet; each data plane
// holds its own ticket keys) sharing one session-ticket key file, rotated with
// contrib/ticket-keys-rotate.sh: a ticket from one resumes on the other; after
// a rotation old tickets still resume until their key leaves the file, then
// they get a full handshake (which still succeeds). A broken key file fails
// the reload and the old keys go on; without a file each instance has its own.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePorts, makeTwoDomainPki, ROOT, run, startMailfront, type Mailfront, type TwoDomainPki } from '../helpers/mailfront.js';
import { greetingBackend, handshake, reload } from './helpers.js';

const ROTATE = path.join(ROOT, 'contrib', 'ticket-keys-rotate.sh');

let dir: string;
let pki: TwoDomainPki;
let backend: Awaited<ReturnType<typeof greetingBackend>>;
let keyFile: string;
const started: Mailfront[] = [];

function config(port: number, ticketKeys?: string): string {
  return `certificates:
  letsencrypt: [${pki.letsencrypt}]
  default: mail.example.com
listeners:
  - {name: imaps, protocol: imaps, listen: ["127.0.0.1:${port}"], backend: imap}
backends:
  imap: {servers: ["127.0.0.1:${backend.port}"]}
${ticketKeys ? `tls: {ticket_keys: ${ticketKeys}}\n` : ''}workers: 2
metrics: false
log: {level: info}
`;
}

async function rotate(args: string[]): Promise<void> {
  const r = await run(ROTATE, ['-f', keyFile, ...args]);
  expect(r, r.stderr).toMatchObject({ code: 0 });
}

const keysIn = () => readFileSync(keyFile, 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));

beforeAll(async () => {
  dir = mkdtempSync('/tmp/mf-fleet-');
  pki = makeTwoDomainPki(dir);
  backend = await greetingBackend();
  keyFile = path.join(dir, 'ticket-keys');
});

afterAll(async () => {
  for (const m of started) await m.kill();
  await backend?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('a fleet sharing one ticket key file', () => {
  it('resumes across instances, through rotations, until a key is dropped', async () => {
    await rotate(['-n']);
    expect(keysIn()).toHaveLength(1);
    expect(statSync(keyFile).mode & 0o777).toBe(0o640);

    const [pa, pb] = (await freePorts(2)) as [number, number];
    const a = await startMailfront(config(pa, keyFile));
    started.push(a);
    const b = await startMailfront(config(pb, keyFile));
    started.push(b);
    // Both say which key encrypts: the same one.
    const ready = (m: Mailfront) => m.lines.find((l) => l.msg === 'mailfront ready')!;
    expect(ready(a).ticket_key_id).toMatch(/^[0-9a-f]{12}$/);
    expect(ready(a).ticket_key_id).toBe(ready(b).ticket_key_id);
    expect(ready(a).ticket_key_count).toBe(1);

    // A full handshake on A; its ticket resumes on B (and on A).
    const first = await handshake(pa, pki.ca.rootPem);
    expect(first.reused).toBe(false);
    expect(first.greeting).toContain('fleet backend');
    const t1 = first.session;
    expect((await handshake(pb, pki.ca.rootPem, { session: t1 })).reused).toBe(true);
    expect((await handshake(pa, pki.ca.rootPem, { session: t1 })).reused).toBe(true);

    // Rotation: a new key on top, both instances reloaded by the script.
    await rotate(['-p', String(a.pid), '-p', String(b.pid), '-k', '2']);
    const [ra, rb] = await Promise.all(
      [a, b].map((m) => m.waitForLog((l) => l.msg === 'reloaded' || l.msg.startsWith('reload failed'), 15_000)),
    );
    expect(ra!.msg).toBe('reloaded');
    expect(rb!.msg).toBe('reloaded');
    expect(ra!.ticket_key_count).toBe(2);
    expect(ra!.ticket_key_id).toBe(rb!.ticket_key_id);
    expect(ra!.ticket_key_id).not.toBe(ready(a).ticket_key_id);
    expect(keysIn()).toHaveLength(2);

    // The old key still decrypts on both.
    expect((await handshake(pb, pki.ca.rootPem, { session: t1 })).reused).toBe(true);
    expect((await handshake(pa, pki.ca.rootPem, { session: t1 })).reused).toBe(true);
    // A ticket under the new key, from B, resumes on A.
    const second = await handshake(pb, pki.ca.rootPem);
    expect(second.reused).toBe(false);
    const t2 = second.session;
    expect((await handshake(pa, pki.ca.rootPem, { session: t2 })).reused).toBe(true);

    // Next rotation with -k 2 drops the first key: t1 gets a full handshake, still served.
    const from = [a.lines.length, b.lines.length];
    await rotate(['-p', String(a.pid), '-p', String(b.pid), '-k', '2']);
    await a.waitForLog((l) => l.msg === 'reloaded', 15_000, from[0]);
    await b.waitForLog((l) => l.msg === 'reloaded', 15_000, from[1]);
    const stale = await handshake(pa, pki.ca.rootPem, { session: t1 });
    expect(stale.reused).toBe(false);
    expect(stale.greeting).toContain('fleet backend');
    expect((await handshake(pb, pki.ca.rootPem, { session: t1 })).reused).toBe(false);
    // t2's key is still there.
    expect((await handshake(pb, pki.ca.rootPem, { session: t2 })).reused).toBe(true);

    // A broken key file: the reload fails with the file and line; the old keys go on.
    const good = readFileSync(keyFile, 'utf8');
    writeFileSync(keyFile, `${good}not-a-key\n`);
    const bad = await reload(a);
    expect(bad.ok).toBe(false);
    expect(String(bad.line.err)).toContain(`${keyFile}:4: a ticket key is base64 of 80 bytes`);
    expect((await handshake(pa, pki.ca.rootPem, { session: t2 })).reused).toBe(true);
    // A missing file fails the same way.
    rmSync(keyFile);
    const gone = await reload(a);
    expect(gone.ok).toBe(false);
    expect(String(gone.line.err)).toMatch(/ticket-keys: ENOENT/);
    expect((await handshake(pa, pki.ca.rootPem, { session: t2 })).reused).toBe(true);
    writeFileSync(keyFile, good, { mode: 0o640 });
    expect((await reload(a)).ok).toBe(true);
  });

  it('without a key file each instance makes its own keys: tickets resume only where they were issued', async () => {
    const [pc, pd] = (await freePorts(2)) as [number, number];
    const c = await startMailfront(config(pc));
    started.push(c);
    const d = await startMailfront(config(pd));
    started.push(d);
    expect(c.lines.find((l) => l.msg === 'mailfront ready')!.ticket_keys).toBe('in memory, rotated every 6 h');
    const t = (await handshake(pc, pki.ca.rootPem)).session;
    expect((await handshake(pc, pki.ca.rootPem, { session: t })).reused).toBe(true);
    const other = await handshake(pd, pki.ca.rootPem, { session: t });
    expect(other.reused).toBe(false);
    expect(other.greeting).toContain('fleet backend');
    // A reload keeps the in-memory keys (no forced full handshakes).
    expect((await reload(c)).ok).toBe(true);
    expect((await handshake(pc, pki.ca.rootPem, { session: t })).reused).toBe(true);
  });
});
