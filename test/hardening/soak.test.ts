// Soak: one mailfront (the CLI, 2 workers) in front of bench's C echo backend,
// a warm-up churn, then >= 200,000 connections (TLS 1.3 resumed handshake,
// greeting, 3 echo round trips compared byte for byte, close), sampling the
// process's RSS and descriptors. Opt-in and slow (~4-5 min): MF_SOAK=1
// (MF_SOAK_N to change the count); vitest.config.ts collects this file only
// then. Writes docs/soak-figures.json.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import net from 'node:net';
import { writeFileSync } from 'node:fs';
import { CLI, freePorts, makeTwoDomainPki, ROOT } from '../helpers/mailfront.js';
import { sleep, within } from '../native/harness.js';
import { backendBin, churnBin, procSample, writeText } from './util.js';

const N = Number(process.env.MF_SOAK_N ?? 200_000);
const WARM = Math.min(20_000, Math.ceil(N / 10));

function runChurn(bin: string, args: string[], bound: number): Promise<Record<string, number | string>> {
  return new Promise((resolve, reject) => {
    const p = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    const t = setTimeout(() => p.kill('SIGKILL'), bound);
    p.on('close', (code) => {
      clearTimeout(t);
      if (code !== 0) return reject(new Error(`churn exited ${code}: ${err}`));
      resolve(JSON.parse(out.trim()));
    });
  });
}

describe('soak', () => {
  it(`churns ${N} connections with no RSS growth and no descriptor leak`, async () => {
    const churn = churnBin();
    const dir = mkdtempSync('/tmp/mf-hard-soak-');
    const two = makeTwoDomainPki(dir);
    const be = spawn(backendBin(), ['--port', '0', '--greeting', '* OK soak backend\r\n', '--max-seconds', '900'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const bePort = await within(new Promise<number>((r) => be.stdout.once('data', (d) => r(JSON.parse(String(d).split('\n')[0]!).port))), 5000, 'backend');
    const [port] = await freePorts(1);
    const cfg = path.join(dir, 'mailfront.yaml');
    // log level warn (no line per connection): readiness is the port answering.
    writeFileSync(cfg, `certificates: {letsencrypt: [${two.letsencrypt}], default: mail.example.com}
listeners:
  - {name: imaps, protocol: imaps, listen: ["127.0.0.1:${port}"], backend: imap}
backends:
  imap: {servers: ["127.0.0.1:${bePort}"]}
workers: 2
limits: {connections: 100000, per_client: 1000, connection_rate: off}
metrics: false
log: {level: warn}
`);
    const child = spawn(process.execPath, [CLI, 'run', '--config', cfg], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let logText = '';
    child.stdout.on('data', (d) => (logText = (logText + d).slice(-100_000)));
    child.stderr.on('data', (d) => (logText = (logText + d).slice(-100_000)));
    const mf = { pid: child.pid!, errors: () => logText.split('\n').filter((l) => /"level":"error"/.test(l)) };
    const deadline = Date.now() + 20_000;
    for (;;) {
      const up = await new Promise<boolean>((r) => {
        const s = net.connect({ host: '127.0.0.1', port }, () => (s.destroy(), r(true)));
        s.on('error', () => r(false));
      });
      if (up) break;
      if (Date.now() > deadline) throw new Error(`mailfront not listening: ${logText}`);
      await sleep(200);
    }
    const samples: { at: string; rssKb: number; fds: number; threads: number; t: number }[] = [];
    const t0 = Date.now();
    const sample = (at: string) => samples.push({ at, t: Math.round((Date.now() - t0) / 1000), ...procSample(mf.pid) });
    try {
      await sleep(1000);
      sample('start');
      const args = ['--port', String(port), '-c', '64', '-r', '3', '-l', '256', '--sni', 'mail.example.com', '--ca', two.caFile];
      const warm = await runChurn(churn, [...args, '-n', String(WARM), '-t', '120'], 150_000);
      expect(warm.failures, JSON.stringify(warm)).toBe(0);
      await sleep(2000);
      sample('after warm-up');
      const during = setInterval(() => sample('during'), 15_000);
      const main = await runChurn(churn, [...args, '-n', String(N), '-t', '420'], 450_000).finally(() => clearInterval(during));
      await sleep(3000);
      sample('end');
      const warmS = samples.find((s) => s.at === 'after warm-up')!;
      const endS = samples.find((s) => s.at === 'end')!;
      const figures = {
        connections: N,
        warmup: WARM,
        churn: main,
        warmChurn: warm,
        samples,
        rssGrowthPct: Math.round(((endS.rssKb - warmS.rssKb) / warmS.rssKb) * 1000) / 10,
        mailfrontLogErrors: mf.errors(),
      };
      writeText(path.join(ROOT, 'docs', 'soak-figures.json'), JSON.stringify(figures, null, 2) + '\n');
      console.log(`HARDENING-FIGURES soak ${JSON.stringify(figures)}`);
      expect(main.ok).toBe(N);
      expect(main.failures, JSON.stringify(main)).toBe(0);
      expect(main.mismatches).toBe(0);
      // ~50%, not ~100%: mailfront sends no new TLS 1.3 ticket after a resumption and OpenSSL clients use a
      // ticket once (see docs/hardening-report.md). A figure, not a pass condition beyond "resumption works".
      expect(Number(main.resumed)).toBeGreaterThan(N * 0.4);
      expect(endS.fds).toBeLessThanOrEqual(warmS.fds);
      expect(endS.rssKb).toBeLessThanOrEqual(warmS.rssKb * 1.05);
    } finally {
      child.kill('SIGTERM');
      await within(new Promise((r) => child.once('exit', r)), 20_000, 'mailfront exit').catch(() => child.kill('SIGKILL'));
      be.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  }, 900_000);
});
