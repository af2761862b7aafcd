// The data plane's workers run ahead of the rest of the process (native/thread_priority.h):
// once they start, every other thread goes 5 nice steps lower, the workers keep the process's.
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSnapshot, fakeBackend, makePki, startProxy } from './harness.js';
import type { FakeBackend, Pki } from './harness.js';

let pki: Pki;
let backend: FakeBackend;

beforeAll(async () => {
  pki = makePki();
  backend = await fakeBackend('* OK ready\r\n');
});

afterAll(async () => {
  await backend?.close();
  pki?.cleanup();
});

/** Nice value of every thread of this process (field 19 of /proc/self/task/TID/stat). */
function niceByThread(): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out.set(Number(tid), Number(fields[16]));
  }
  return out;
}

describe('workers ahead of the control plane', () => {
  it('starting the data plane lowers every other thread by 5 nice steps, once; the workers keep the process nice', () => {
    const before = os.getPriority();
    expect(before).toBeLessThanOrEqual(14); // room for the 5 steps
    const threadsBefore = niceByThread();
    const px = startProxy(buildSnapshot(pki, { servers: [backend.address] }), 2);
    try {
      const after = niceByThread();
      const workers = [...after].filter(([tid]) => !threadsBefore.has(tid) && after.get(tid) === before);
      expect(workers).toHaveLength(2);
      expect(os.getPriority()).toBe(before + 5); // the JS thread
      for (const [tid, nice] of threadsBefore) if (after.has(tid)) expect(nice + 5, `thread ${tid}`).toBe(after.get(tid));
      // A second data plane in the same process does not lower them again.
      const second = startProxy(buildSnapshot(pki, { servers: [backend.address] }));
      second.stop();
      expect(os.getPriority()).toBe(before + 5);
    } finally {
      px.stop();
    }
  });
});
