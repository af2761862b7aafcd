import { execFileSync } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MailfrontError } from '../../src/errors.js';
import { createNotifier, listenFds, monotonicUsec, watchdogUsec } from '../../src/systemd.js';

function fakeSd(connected = true) {
  const sent: string[] = [];
  return { sent, sdNotify: (s: string) => (sent.push(s), connected) };
}

describe('notifier states', () => {
  it('sends READY and STOPPING, with one-line status text', () => {
    const sd = fakeSd();
    const n = createNotifier(sd.sdNotify);
    expect(n.ready()).toBe(true);
    n.ready('serving 12 certificates');
    n.ready('reload failed:\nbad key\r\nin /etc/x');
    n.stopping('draining 40 connections');
    n.stopping();
    expect(sd.sent).toEqual([
      'READY=1',
      'READY=1\nSTATUS=serving 12 certificates',
      'READY=1\nSTATUS=reload failed: bad key in /etc/x',
      'STOPPING=1\nSTATUS=draining 40 connections',
      'STOPPING=1',
    ]);
  });

  it('RELOADING carries MONOTONIC_USEC from the clock', () => {
    const sd = fakeSd();
    createNotifier(sd.sdNotify, () => 123456789n).reloading();
    expect(sd.sent).toEqual(['RELOADING=1\nMONOTONIC_USEC=123456789']);
  });

  it('reports false outside systemd', () => {
    expect(createNotifier(fakeSd(false).sdNotify).ready()).toBe(false);
  });

  it('monotonicUsec() is CLOCK_MONOTONIC (checked against python3 when present)', () => {
    let py: bigint;
    const before = monotonicUsec();
    try {
      py = BigInt(
        execFileSync('python3', ['-c', 'import time; print(time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)'], {
          encoding: 'utf8',
        }).trim(),
      );
    } catch {
      return; // no python3: nothing to compare with
    }
    const after = monotonicUsec();
    expect(py >= before && py <= after).toBe(true);
  });
});

describe('watchdog', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it.each([
    [{}, 0],
    [{ WATCHDOG_USEC: '30000000' }, 30_000_000],
    [{ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '4242' }, 30_000_000],
    [{ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '1' }, 0],
    [{ WATCHDOG_USEC: '0' }, 0],
    [{ WATCHDOG_USEC: '30s' }, 0],
  ])('watchdogUsec(%o) = %d', (env, want) => {
    expect(watchdogUsec(env, 4242)).toBe(want);
  });

  it('pings every half WATCHDOG_USEC from an unref-ed timer, and stops', () => {
    const sd = fakeSd();
    const n = createNotifier(sd.sdNotify);
    const spy = vi.spyOn(globalThis, 'setInterval');
    expect(n.startWatchdog({ env: { WATCHDOG_USEC: '30000000', WATCHDOG_PID: '4242' }, pid: 4242 })).toBe(15_000);
    const timer = spy.mock.results[0]?.value as NodeJS.Timeout;
    expect(timer.hasRef()).toBe(false);
    expect(sd.sent).toEqual(['WATCHDOG=1']);
    vi.advanceTimersByTime(14_999);
    expect(sd.sent).toHaveLength(1);
    vi.advanceTimersByTime(1);
    vi.advanceTimersByTime(15_000);
    expect(sd.sent).toEqual(['WATCHDOG=1', 'WATCHDOG=1', 'WATCHDOG=1']);
    n.stopWatchdog();
    vi.advanceTimersByTime(60_000);
    expect(sd.sent).toHaveLength(3);
    spy.mockRestore();
  });

  it('skips pings while healthy() is false', () => {
    const sd = fakeSd();
    let healthy = true;
    let skipped = 0;
    const n = createNotifier(sd.sdNotify);
    n.startWatchdog({ env: { WATCHDOG_USEC: '2000000' }, healthy: () => healthy, onUnhealthy: () => skipped++ });
    vi.advanceTimersByTime(1000);
    healthy = false;
    vi.advanceTimersByTime(3000);
    healthy = true;
    vi.advanceTimersByTime(1000);
    expect(sd.sent).toEqual(['WATCHDOG=1', 'WATCHDOG=1', 'WATCHDOG=1']);
    expect(skipped).toBe(3);
    n.stopWatchdog();
  });

  it('does nothing when systemd did not ask, or asked another pid', () => {
    const sd = fakeSd();
    const n = createNotifier(sd.sdNotify);
    expect(n.startWatchdog({ env: {} })).toBe(0);
    expect(n.startWatchdog({ env: { WATCHDOG_USEC: '1000000', WATCHDOG_PID: '1' }, pid: 2 })).toBe(0);
    vi.advanceTimersByTime(10_000);
    expect(sd.sent).toEqual([]);
  });
});

describe('listenFds', () => {
  it('maps names to fds starting at 3, several fds per name, and unsets the variables', () => {
    const env: NodeJS.ProcessEnv = {
      LISTEN_PID: '4242',
      LISTEN_FDS: '4',
      LISTEN_FDNAMES: 'imaps:imaps:sieve:pop3s',
      PATH: '/usr/bin',
    };
    expect([...listenFds(env, 4242)]).toEqual([
      ['imaps', [3, 4]],
      ['sieve', [5]],
      ['pop3s', [6]],
    ]);
    expect(env).toEqual({ PATH: '/usr/bin' });
  });

  it('names unnamed sockets "unknown"', () => {
    expect([...listenFds({ LISTEN_PID: '7', LISTEN_FDS: '2' }, 7)]).toEqual([['unknown', [3, 4]]]);
  });

  it('ignores sockets meant for another process, but still unsets the variables', () => {
    const env: NodeJS.ProcessEnv = { LISTEN_PID: '1', LISTEN_FDS: '1', LISTEN_FDNAMES: 'imaps' };
    expect(listenFds(env, 4242).size).toBe(0);
    expect(env).toEqual({});
  });

  it('returns an empty map when not socket-activated', () => {
    expect(listenFds({}, 4242).size).toBe(0);
    expect(listenFds({ LISTEN_PID: '4242', LISTEN_FDS: '0', LISTEN_FDNAMES: '' }, 4242).size).toBe(0);
  });

  it.each([
    [{ LISTEN_PID: 'x', LISTEN_FDS: '1' }, 'socket activation: LISTEN_PID="x" is not a pid'],
    [{ LISTEN_PID: '4242', LISTEN_FDS: '-1' }, 'socket activation: LISTEN_FDS="-1" is not a count'],
    [{ LISTEN_PID: '4242', LISTEN_FDS: '2', LISTEN_FDNAMES: 'imaps' }, 'socket activation: 2 fds but LISTEN_FDNAMES has 1 names ("imaps")'],
  ])('throws MF_LISTEN on %o', (env: NodeJS.ProcessEnv, message) => {
    let err: unknown;
    try {
      listenFds(env, 4242);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MailfrontError);
    expect(err).toMatchObject({ code: 'MF_LISTEN', message });
    expect(env.LISTEN_PID).toBeUndefined();
  });
});
