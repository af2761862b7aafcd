// Process control: every process the bench starts goes through start(), pinned to CPUs and recorded,
// so that stopAll() and the signal handlers can end each one on every path (a peer left running
// holds its port and fails the next repetitions). Also CPU time and RSS from /proc.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { CLK_TCK, LOGS, ROOT, sleep } from './config.mjs';

const NOFILE = 200000;
/** Processes started and not yet exited. */
const live = new Set();

function track(child) {
  live.add(child);
  child.once('exit', () => live.delete(child));
  child.once('error', () => live.delete(child));
  return child;
}

/**
 * Spawns `cmd` pinned to `cpus` (taskset list, e.g. 0 or "0,1") with a raised fd limit; the child's pid
 * is the program's own (exec). Output goes to work/logs/NAME.log (stdout to a pipe with pipeStdout).
 */
export function start(name, cpus, cmd, argv, opts = {}) {
  const out = fs.openSync(path.join(LOGS, `${name}.log`), 'a');
  const quoted = [cmd, ...argv].map((s) => `'${String(s).replace(/'/g, `'\\''`)}'`).join(' ');
  const child = spawn('bash', ['-c', `ulimit -Hn ${NOFILE} 2>/dev/null; ulimit -n ${NOFILE} 2>/dev/null || ulimit -n $(ulimit -Hn); exec taskset -c ${cpus} ${quoted}`], {
    cwd: opts.cwd ?? ROOT,
    stdio: ['pipe', opts.pipeStdout ? 'pipe' : out, out],
    env: { ...process.env, ...(opts.env ?? {}) },
  });
  child.once('exit', () => fs.closeSync(out));
  child.name = name;
  return track(child);
}

/** Spawns a tool that is not pinned (perf, strace), recorded like the others. */
export function spawnTool(cmd, argv) {
  return track(spawn(cmd, argv, { stdio: 'ignore' }));
}

const running = (child) => child && child.exitCode === null && child.signalCode === null;

/** Ends one process: `sig`, then SIGKILL after graceMs; resolves once it has exited. */
export async function stop(child, sig = 'SIGTERM', graceMs = 5000) {
  if (!running(child)) return;
  const done = new Promise((r) => child.once('exit', r));
  child.kill(sig);
  const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await done;
  clearTimeout(t);
}

/** Ends every process still running. */
export async function stopAll() {
  await Promise.all([...live].map((c) => stop(c)));
}

/** Synchronous last resort (signals, exit): SIGKILL to whatever is still running. */
export function killAllNow() {
  for (const c of live) if (running(c)) try { c.kill('SIGKILL'); } catch {}
}

/** SIGINT/SIGTERM and a crash end the started processes before the bench exits. */
export function installExitHandlers() {
  process.on('SIGINT', () => { killAllNow(); process.exit(130); });
  process.on('SIGTERM', () => { killAllNow(); process.exit(143); });
  process.on('exit', killAllNow);
}

export { waitPort } from './wait-port.mjs';

/** Fails when something already listens on `port` (a process this bench did not start, or another bench). */
export function assertPortFree(port) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); reject(new Error(`port ${port} is already in use: another bench or a left-over process (try --port-offset)`)); });
    s.once('error', () => { s.destroy(); resolve(); });
  });
}

/** Fields after the command name of /proc/PID/stat (field 3 is index 0). */
export function statFields(pid) {
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return { comm: s.slice(s.indexOf('(') + 1, s.lastIndexOf(')')), f: s.slice(s.lastIndexOf(')') + 2).split(' ') };
}

/** utime+stime of the whole process (all threads, live and exited), in seconds. */
export function cpuSeconds(pid) {
  const { f } = statFields(pid);
  return (Number(f[11]) + Number(f[12])) / CLK_TCK; // fields 14 and 15
}

/**
 * CPU use of a process at one moment: whole-process seconds from /proc/PID/stat (live and exited
 * threads, in 10 ms ticks), and each live thread's nanoseconds from /proc/PID/task/TID/schedstat.
 */
export function cpuSnapshot(pid) {
  const tasks = new Map();
  for (const tid of fs.readdirSync(`/proc/${pid}/task`))
    try { tasks.set(tid, Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0])); } catch {}
  return { ticks: cpuSeconds(pid), tasks };
}

/**
 * CPU seconds between two snapshots: to the nanosecond when the same threads lived through both
 * and their sum agrees with the ticks (threads that came and went in between, like stunnel's, make
 * it disagree), else from the ticks. A 10 ms tick is 4% of a 0.25 s measurement.
 */
export function cpuBetween(a, b) {
  const ticks = b.ticks - a.ticks;
  if (a.tasks.size !== b.tasks.size || ![...a.tasks.keys()].every((t) => b.tasks.has(t))) return ticks;
  let ns = 0;
  for (const [t, v] of b.tasks) ns += v - a.tasks.get(t);
  const exact = ns / 1e9;
  return Math.abs(exact - ticks) <= 0.02 + 0.02 * ticks ? exact : ticks;
}

export function rssKiB(pid) {
  const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return Number(m[1]);
}

/** Waits until the proxy stops burning CPU (tail of the relay, closes), bounded. */
export async function quiesce(pid) {
  let last = cpuSeconds(pid);
  for (let i = 0, still = 0; i < 30 && still < 2; i++) {
    await sleep(100);
    const c = cpuSeconds(pid);
    still = c === last ? still + 1 : 0;
    last = c;
  }
  return last;
}

/** Output of a command (stdout and stderr), or its error text; never throws. */
export function sh(cmd, argv) {
  try { return execFileSync('bash', ['-c', '"$@" 2>&1', '-', cmd, ...argv], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim(); }
  catch (e) { return `${e.stdout ?? ''}${e.stderr ?? ''}`.trim(); }
}
