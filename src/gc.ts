// One full V8 collection on request. A reload leaves the previous certificate store (with 10,000
// certificates, some 200 MiB of objects promoted to V8's old space while it was built) as
// garbage that V8 collects only when its old space next fills: RSS then swings between reloads by
// that much (bench/RESULTS.md: 400-600 MiB; 435-441 with one collection after each reload).
import v8 from 'node:v8';
import vm from 'node:vm';

let gc: (() => void) | undefined | null = null;

/** Runs a full collection; false when this V8 offers none. */
export function collectGarbage(): boolean {
  if (gc === null) {
    gc = (globalThis as { gc?: () => void }).gc;
    if (!gc) {
      try {
        // As jest's leak detector does: the flag exposes gc() to contexts made after it.
        v8.setFlagsFromString('--expose-gc');
        gc = vm.runInNewContext('gc') as () => void;
      } catch {
        gc = undefined;
      }
    }
  }
  gc?.();
  return gc !== undefined;
}
