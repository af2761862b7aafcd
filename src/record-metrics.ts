// Metric families fed once per finished connection (src/metrics.ts, observeConnection), on
// the JS thread for every record. prom-client's inc() and observe() validate and hash their
// label object on every call: 31.5k instructions per connection for the six of a record,
// 1.3% of a full handshake (bench/PROFILE.md, issue 17 third round). Here a series is found
// by its label values in a Map, and the exposition is built only when scraped, in the
// same form as prom-client's Counter and Histogram (test/unit/record-metrics.test.ts).
import type { Registry } from 'prom-client';

type Labels = Record<string, string>;

// The registry reads name, help, type, aggregator, get() and reset(); its typings name its own classes only.
function register(registry: Registry, metric: RecordCounter | RecordHistogram): void {
  registry.registerMetric(metric as never);
}

function labelsOf(names: readonly string[], values: readonly string[]): Labels {
  const labels: Labels = {};
  names.forEach((n, i) => (labels[n] = values[i] ?? ''));
  return labels;
}

/** A counter by label values, as prom-client's Counter with labelNames. */
export class RecordCounter {
  readonly type = 'counter';
  readonly aggregator = 'sum';
  private series = new Map<string, { labels: Labels; value: number }>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly string[],
    registry: Registry,
  ) {
    register(registry, this);
  }

  /** Adds one to the series of these label values (two or three, in labelNames order). */
  inc(a: string, b: string, c?: string): void {
    const key = c === undefined ? `${a}\0${b}` : `${a}\0${b}\0${c}`;
    let s = this.series.get(key);
    if (!s) this.series.set(key, (s = { labels: labelsOf(this.labelNames, c === undefined ? [a, b] : [a, b, c]), value: 0 }));
    s.value++;
  }

  get() {
    const values = [...this.series.values()].map((s) => ({ labels: { ...s.labels }, value: s.value }));
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    this.series.clear();
  }
}

/** A histogram with one label, as prom-client's Histogram with one labelName and these buckets. */
export class RecordHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private series = new Map<string, { labels: Labels; buckets: number[]; sum: number; count: number }>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelName: string,
    private readonly bounds: readonly number[],
    registry: Registry,
  ) {
    register(registry, this);
  }

  observe(labelValue: string, value: number): void {
    let s = this.series.get(labelValue);
    if (!s) this.series.set(labelValue, (s = { labels: { [this.labelName]: labelValue }, buckets: this.bounds.map(() => 0), sum: 0, count: 0 }));
    // The first bucket that holds it (le: value <= bound); beyond the last, only +Inf.
    const bounds = this.bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]!) {
        s.buckets[i]! += 1;
        break;
      }
    }
    s.sum += value;
    s.count += 1;
  }

  get() {
    const bucket = `${this.name}_bucket`;
    const values: { labels: Record<string, string | number>; value: number; metricName: string; exemplar?: null }[] = [];
    for (const s of this.series.values()) {
      let acc = 0;
      this.bounds.forEach((le, i) => {
        acc += s.buckets[i]!;
        values.push({ labels: { le, ...s.labels }, value: acc, metricName: bucket, exemplar: null });
      });
      values.push({ labels: { le: '+Inf', ...s.labels }, value: s.count, metricName: bucket, exemplar: null });
      values.push({ labels: { ...s.labels }, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { ...s.labels }, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    this.series.clear();
  }
}
