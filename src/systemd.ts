// systemd integration: sd_notify(3) states, the watchdog, and socket
// activation (sd_listen_fds(3)). Works the same, and does nothing harmful,
// outside systemd: sdNotify() then returns false and LISTEN_* are unset.
import { MailfrontError } from './errors.js';

export type SdNotify = (state: string) => boolean;

/**
 * CLOCK_MONOTONIC in microseconds, as systemd wants in MONOTONIC_USEC.
 * process.hrtime is only documented as "monotonic"; on Linux it is libuv's
 * uv_hrtime(), which reads clock_gettime(CLOCK_MONOTONIC) (not _COARSE, not
 * BOOTTIME), so the values agree with systemd's. test/unit/systemd.test.ts
 * checks this against python3's time.clock_gettime(CLOCK_MONOTONIC).
 */
export function monotonicUsec(): bigint {
  return process.hrtime.bigint() / 1000n;
}

export interface WatchdogOptions {
  /** Checked before each ping; a false answer skips it, so systemd restarts a wedged process. */
  healthy?: () => boolean;
  /** Called when a ping is skipped (to log why). */
  onUnhealthy?: () => void;
  env?: NodeJS.ProcessEnv;
  pid?: number;
}

export interface Notifier {
  /** Sends raw assignments ("READY=1\nSTATUS=..."); false when not under systemd. */
  notify(state: string): boolean;
  ready(status?: string): boolean;
  /** Before a reload; send ready() when it is over (Type=notify-reload requires both). */
  reloading(): boolean;
  stopping(status?: string): boolean;
  /** Starts WATCHDOG=1 pings if systemd asked for them; returns the interval in ms, or 0. */
  startWatchdog(options?: WatchdogOptions): number;
  stopWatchdog(): void;
}

/** A STATUS= value is one line: a newline would start a new assignment. */
function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ');
}

/**
 * sd_watchdog_enabled(3): the ping interval in µs, or 0 when the watchdog is
 * off, WATCHDOG_USEC is malformed, or WATCHDOG_PID names another process.
 */
export function watchdogUsec(env: NodeJS.ProcessEnv = process.env, pid: number = process.pid): number {
  const usec = env.WATCHDOG_USEC;
  if (usec === undefined || !/^\d+$/.test(usec) || Number(usec) === 0) return 0;
  const wpid = env.WATCHDOG_PID;
  if (wpid !== undefined && wpid !== '' && wpid !== String(pid)) return 0;
  return Number(usec);
}

export function createNotifier(sdNotify: SdNotify, clock: () => bigint = monotonicUsec): Notifier {
  let timer: NodeJS.Timeout | undefined;
  const notify = (state: string) => sdNotify(state);
  const stopWatchdog = () => {
    if (timer) clearInterval(timer);
    timer = undefined;
  };
  return {
    notify,
    ready: (status) => notify(status === undefined ? 'READY=1' : `READY=1\nSTATUS=${oneLine(status)}`),
    reloading: () => notify(`RELOADING=1\nMONOTONIC_USEC=${clock()}`),
    stopping: (status) => notify(status === undefined ? 'STOPPING=1' : `STOPPING=1\nSTATUS=${oneLine(status)}`),
    startWatchdog(options = {}) {
      stopWatchdog();
      const usec = watchdogUsec(options.env, options.pid);
      if (usec === 0) return 0;
      // Half the timeout, as sd_watchdog_enabled(3) recommends.
      const ms = Math.max(1, Math.floor(usec / 2000));
      const ping = () => {
        if (options.healthy && !options.healthy()) options.onUnhealthy?.();
        else notify('WATCHDOG=1');
      };
      timer = setInterval(ping, ms);
      timer.unref(); // the watchdog never keeps the process alive on its own
      ping();
      return ms;
    },
    stopWatchdog,
  };
}

/** First fd passed by systemd (SD_LISTEN_FDS_START). */
export const LISTEN_FDS_START = 3;

/**
 * sd_listen_fds_with_names(3) with unset_environment = 1: the sockets systemd
 * passed, by FileDescriptorName= ("unknown" when unnamed). A socket unit with
 * several ListenStream= lines gives one name several fds. Returns an empty map
 * when not socket-activated or when LISTEN_PID names another process; throws
 * MF_LISTEN on malformed variables. The variables are removed in every case so
 * child processes do not take the sockets for theirs.
 * The fds keep the flags systemd gave them (no FD_CLOEXEC): native adopts them.
 */
export function listenFds(env: NodeJS.ProcessEnv = process.env, pid: number = process.pid): Map<string, number[]> {
  const { LISTEN_PID: lpid, LISTEN_FDS: lfds, LISTEN_FDNAMES: lnames } = env;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  const out = new Map<string, number[]>();
  if (lpid === undefined || lfds === undefined) return out;
  if (!/^\d+$/.test(lpid)) throw new MailfrontError('MF_LISTEN', `socket activation: LISTEN_PID="${lpid}" is not a pid`);
  if (Number(lpid) !== pid) return out;
  if (!/^\d+$/.test(lfds)) throw new MailfrontError('MF_LISTEN', `socket activation: LISTEN_FDS="${lfds}" is not a count`);
  const n = Number(lfds);
  if (n === 0) return out;
  const names = lnames === undefined ? Array<string>(n).fill('unknown') : lnames.split(':');
  if (names.length !== n) {
    throw new MailfrontError('MF_LISTEN', `socket activation: ${n} fds but LISTEN_FDNAMES has ${names.length} names ("${lnames}")`);
  }
  names.forEach((given, i) => {
    const name = given === '' ? 'unknown' : given;
    const fds = out.get(name) ?? [];
    fds.push(LISTEN_FDS_START + i);
    out.set(name, fds);
  });
  return out;
}
