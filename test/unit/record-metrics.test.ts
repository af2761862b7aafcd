// The per-record metric families (src/record-metrics.ts) expose what prom-client's Counter
// and Histogram expose for the same observations: fed side by side into two registries,
// the scraped texts are equal, in both exposition formats.
import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { RecordCounter, RecordHistogram } from '../../src/record-metrics.js';
import { DURATION_BUCKETS, HANDSHAKE_BUCKETS } from '../../src/metrics.js';

function pair(contentType?: typeof Registry.OPENMETRICS_CONTENT_TYPE) {
  const theirs = new Registry(contentType);
  const ours = new Registry(contentType);
  const help = 'Finished connections.';
  return {
    theirs,
    ours,
    counters: [
      new Counter({ name: 'x_closed_total', help, labelNames: ['listener', 'reason'], registers: [theirs] }),
      new RecordCounter('x_closed_total', help, ['listener', 'reason'], ours),
    ] as const,
    histograms: [
      new Histogram({ name: 'x_handshake_seconds', help, labelNames: ['listener'], buckets: HANDSHAKE_BUCKETS, registers: [theirs] }),
      new RecordHistogram('x_handshake_seconds', help, 'listener', HANDSHAKE_BUCKETS, ours),
    ] as const,
    durations: [
      new Histogram({ name: 'x_duration_seconds', help, labelNames: ['pool'], buckets: DURATION_BUCKETS, registers: [theirs] }),
      new RecordHistogram('x_duration_seconds', help, 'pool', DURATION_BUCKETS, ours),
    ] as const,
  };
}

describe('record metrics', () => {
  it.each([
    ['Prometheus text', undefined],
    ['OpenMetrics', Registry.OPENMETRICS_CONTENT_TYPE],
  ] as const)('scrape as prom-client does (%s)', async (_, contentType) => {
    const p = pair(contentType);
    expect(await p.ours.metrics()).toBe(await p.theirs.metrics()); // nothing observed yet
    const listeners = ['imaps', 'pop3s', 'sieve'];
    const reasons = ['client_closed', 'handshake_failed', 'backend_unavailable'];
    // Values on the bounds, between them, zero and beyond the last bound.
    const seconds = [0, 0.001, 0.0015, 0.005, 0.2, 1, 9.99, 10, 11, 86400, 1e6, 0.0025];
    for (let i = 0; i < 200; i++) {
      const listener = listeners[(i * 7) % 3]!;
      const reason = reasons[(i * 5) % 3]!;
      const v = seconds[i % seconds.length]!;
      p.counters[0].inc({ listener, reason });
      p.counters[1].inc(listener, reason);
      p.histograms[0].observe({ listener }, v);
      p.histograms[1].observe(listener, v);
      p.durations[0].observe({ pool: `pool-${i % 2}` }, v * 100);
      p.durations[1].observe(`pool-${i % 2}`, v * 100);
    }
    const text = await p.ours.metrics();
    expect(text).toContain('x_handshake_seconds_bucket{le="0.005",listener="imaps"}');
    expect(text).toBe(await p.theirs.metrics());
    const json = async (r: Registry) => JSON.parse(JSON.stringify(await r.getMetricsAsJSON())) as unknown; // exemplar: undefined
    expect(await json(p.ours)).toEqual(await json(p.theirs));
    p.ours.resetMetrics();
    p.theirs.resetMetrics();
    expect(await p.ours.metrics()).toBe(await p.theirs.metrics());
  });
});
