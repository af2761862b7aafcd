// Bounded concurrency for the certificate store: thousands of files are read with a few
// dozen reads in flight, so disk and libuv threads work while the JS thread parses.

/** Files read at once while loading (each candidate: stat + 1-2 reads). */
export const READ_CONCURRENCY = 32;

/** `fn` over `items` with at most `limit` calls in flight; results in the order of `items`. */
export async function mapBounded<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, worker));
  return out;
}
