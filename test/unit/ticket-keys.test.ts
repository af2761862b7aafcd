// The session-ticket key file in the control plane: a warning when others can
// read it, and no key bytes left in the JS heap once the snapshot is applied.
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { createProxy } from '../../src/native.js';
import { applyGeneration, prepare } from '../../src/service.js';
import { readTicketKeys } from '../../src/ticket-keys.js';
import { makeTwoDomainPki, type TwoDomainPki } from '../helpers/mailfront.js';

let dir: string;
let pki: TwoDomainPki;
const keys = [randomBytes(80), randomBytes(80)];

function keyFile(name: string, mode: number): string {
  const file = path.join(dir, name);
  writeFileSync(file, `# newest first\n${keys.map((k) => k.toString('base64')).join('\n')}\n`);
  chmodSync(file, mode);
  return file;
}

function capture() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { lines, log: createLogger({ level: 'info', destination }) };
}

/** Every Buffer and string reachable from <v>. */
function reachable(v: unknown, out: { buffers: Buffer[]; strings: string[] } = { buffers: [], strings: [] }, seen = new Set<unknown>()) {
  if (typeof v === 'string') out.strings.push(v);
  if (v === null || typeof v !== 'object' || seen.has(v)) return out;
  seen.add(v);
  if (Buffer.isBuffer(v)) out.buffers.push(v);
  else for (const x of v instanceof Map ? [...v.keys(), ...v.values()] : Object.values(v)) reachable(x, out, seen);
  return out;
}

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'mf-ticket-keys-'));
  pki = makeTwoDomainPki(path.join(dir, 'pki'));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('readTicketKeys', () => {
  it('warns when every user can read the file, as for a private key', async () => {
    const open = keyFile('open', 0o644);
    const r = await readTicketKeys(open);
    expect(r.keys).toEqual(keys);
    expect(r.warning).toBe(`${open} holds session-ticket keys and is readable by every user (mode 644): chmod o-rwx`);
    const closed = await readTicketKeys(keyFile('closed', 0o640));
    expect(closed.keys).toEqual(keys);
    expect(closed.warning).toBeUndefined();
  });
});

describe('a generation once applied', () => {
  it('keeps no key bytes: the Buffers apply() got are zeroed, the generation kept holds neither them nor a PEM key', async () => {
    const file = keyFile('fleet-keys', 0o644);
    const config = path.join(dir, 'mailfront.yaml');
    writeFileSync(
      config,
      `certificates: {letsencrypt: [${pki.letsencrypt}], default: mail.example.com}
listeners: [{name: imaps, protocol: imaps, listen: ["127.0.0.1:0"], backend: imap}]
backends: {imap: {servers: ["127.0.0.1:1"]}}
tls: {ticket_keys: ${file}}
metrics: false
`,
    );
    const { lines, log } = capture();
    const gen = await prepare(config, log);
    expect(lines.find((l) => l.component === 'tls')).toMatchObject({ level: 'warn', path: file, msg: expect.stringContaining('readable by every user') });
    const given = gen.snapshot.tls.ticketKeys;
    expect(given).toEqual(keys);
    // The id in the ready/reloaded lines: taken before apply() zeroes the keys.
    const id = createHash('sha256').update(keys[0]!.subarray(0, 16)).digest('hex').slice(0, 12);
    expect(gen.ticketKeys).toEqual({ ticket_keys: file, ticket_key_count: 2, ticket_key_id: id });

    const proxy = createProxy(1, () => {});
    const kept = applyGeneration(proxy, gen);
    proxy.stop();
    expect(given.map((b) => b.equals(Buffer.alloc(80)))).toEqual([true, true]);
    const { buffers, strings } = reachable(kept);
    expect(buffers).toEqual([]);
    const secrets = keys.flatMap((k) => [k.toString('base64'), k.subarray(16).toString('base64').slice(0, 24)]);
    for (const s of strings) {
      expect(s).not.toContain('PRIVATE KEY');
      for (const x of secrets) expect(s).not.toContain(x);
    }
    expect(kept.ticketKeys).toEqual(gen.ticketKeys);
    expect(kept.certs.certificates.map((c) => c.names[0]).sort()).toEqual(['*.example.net', 'mail.example.com']);
  });
});
