// The close reasons live in one table (native/close_reason.h): Conn::close()
// takes its enum, so the data plane cannot close with a reason outside it (a
// string does not compile). Here: every reason of the table is one the log and
// the metrics know, and the log classifies it as the table says.
import { describe, expect, it } from 'vitest';
import { connectionLogLine, ordinaryCloseReasons } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import { loadAddon, type ConnectionRecord } from '../../src/native.js';

const table = loadAddon().closeReasons;

function record(reason: string): ConnectionRecord {
  return {
    listener: 'imaps', protocol: 'imaps', client: '203.0.113.7:51234', server: '', serverLocal: '', pool: '',
    sni: '', tlsVersion: '', cipher: '', group: '', resumed: false, bytesIn: 0, bytesOut: 0,
    handshakeMs: 0, connectMs: 0, durationMs: 1, reason, detail: '', login: 'off', user: '', loginFailures: 0,
  };
}

describe('close reasons', () => {
  it('the table names each reason once, in metric-label form', () => {
    const names = table.map((r) => r.name);
    expect(names.length).toBeGreaterThan(10);
    expect(new Set(names).size).toBe(names.length);
    for (const n of names) expect(n).toMatch(/^[a-z0-9_]{1,40}$/);
  });

  it('the ordinary ends are exactly these (a change here is a change to what gets logged at warn)', () => {
    expect(table.filter((r) => r.ordinary).map((r) => r.name)).toEqual(['client_closed', 'backend_closed', 'pretls_closed', 'idle_timeout', 'shutdown']);
    expect([...ordinaryCloseReasons()].sort()).toEqual(table.filter((r) => r.ordinary).map((r) => r.name).sort());
  });

  it.each(table.map((r) => [r.name, r.ordinary ? 'info' : 'warn'] as const))('%s: the connection line carries it, at %s', (name, level) => {
    const line = connectionLogLine(record(name));
    expect(line.level).toBe(level);
    expect(line.fields.reason).toBe(name);
  });

  it('reasons the data plane never emits are not in the table, and log at warn', () => {
    for (const phantom of ['client_logout', 'drained']) {
      expect(table.map((r) => r.name)).not.toContain(phantom);
      expect(connectionLogLine(record(phantom)).level).toBe('warn');
    }
  });

  it('every reason is its own label of mailfront_connections_closed_total (none folded into "other")', async () => {
    const m = createMetrics({ version: '0.1.0', opensslVersion: 'x', defaultMetrics: false });
    for (const r of table) m.observeConnection(record(r.name));
    const text = await m.registry.metrics();
    for (const r of table) expect(text).toContain(`mailfront_connections_closed_total{listener="imaps",reason="${r.name}"} 1`);
    expect(text).not.toContain('reason="other"');
  });
});
