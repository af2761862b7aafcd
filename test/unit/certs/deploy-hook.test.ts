// contrib/certbot-deploy-hook.sh with stub systemctl/pkill on PATH (never signals real processes).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';

const hook = path.resolve('contrib/certbot-deploy-hook.sh');
let bin: string;
let log: string;

function stub(name: string, body: string): void {
  writeFileSync(path.join(bin, name), `#!/bin/sh\necho "${name} $*" >> "${log}"\n${body}\n`, { mode: 0o755 });
}
function run(): { status: number | null; calls: string[]; stderr: string } {
  writeFileSync(log, '');
  const r = spawnSync('/bin/sh', [hook], { env: { PATH: `${bin}:/usr/bin:/bin`, RENEWED_LINEAGE: '/etc/letsencrypt/live/x' }, encoding: 'utf8' });
  return { status: r.status, calls: readFileSync(log, 'utf8').trim().split('\n').filter(Boolean), stderr: r.stderr };
}

beforeAll(() => {
  bin = mkdtempSync(path.join(os.tmpdir(), 'mf-hook-'));
  log = path.join(bin, 'calls.log');
});
afterAll(() => rmSync(bin, { recursive: true, force: true }));

describe('certbot deploy hook', () => {
  it('reloads through systemd when the unit is active', () => {
    stub('systemctl', 'exit 0');
    stub('pkill', 'exit 0');
    const r = run();
    expect(r.status).toBe(0);
    expect(r.calls).toEqual(['systemctl is-active --quiet mailfront', 'systemctl reload mailfront']);
  });

  it('falls back to SIGHUP for a `mailfront run` process, and exits 0 when there is none', () => {
    stub('systemctl', '[ "$1" = is-active ] && exit 3; exit 0');
    stub('pkill', 'exit 0');
    expect(run().calls).toEqual(['systemctl is-active --quiet mailfront', 'pkill -HUP -f mailfront run']);
    stub('pkill', 'exit 1');
    const r = run();
    expect(r.status).toBe(0);
    expect(r.stderr).toContain('not running');
  });
});
