import { describe, expect, it } from 'vitest';
import { collectGarbage } from '../../src/gc.js';

describe('collectGarbage', () => {
  it('runs a full collection: an object only a WeakRef holds is gone after it', async () => {
    const ref = (() => new WeakRef({ store: new Array(1000).fill('certificate') }))();
    // A WeakRef keeps its target alive until the current job ends.
    await new Promise((r) => setImmediate(r));
    expect(collectGarbage()).toBe(true);
    expect(ref.deref()).toBeUndefined();
  });
});
