// The systemd units in contrib/ pass `systemd-analyze verify`. ExecStart points
// at /usr/bin/mailfront, which a checkout does not install: the copies checked
// here run /bin/true instead, so only that one path differs from the shipped file.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const contrib = path.resolve(__dirname, '../../contrib');
const units = ['mailfront.service', 'mailfront-imaps.socket', 'mailfront-sieve.socket'];

describe('contrib/ systemd units', () => {
  it('pass systemd-analyze verify with no warning', () => {
    const dir = mkdtempSync('/tmp/mf-units-');
    try {
      for (const u of units) {
        const text = readFileSync(path.join(contrib, u), 'utf8').replace(/^(ExecStart(?:Pre)?=)\/usr\/bin\/mailfront .*$/gm, '$1/bin/true');
        writeFileSync(path.join(dir, u), text);
      }
      const r = spawnSync('systemd-analyze', ['verify', ...units.map((u) => path.join(dir, u))], { encoding: 'utf8' });
      expect(r.error).toBeUndefined();
      expect(r.stderr + r.stdout).toBe('');
      expect(r.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the service is Type=notify, reloads with SIGHUP and keeps only CAP_NET_BIND_SERVICE', () => {
    const unit = readFileSync(path.join(contrib, 'mailfront.service'), 'utf8');
    expect(unit).toMatch(/^Type=notify$/m);
    expect(unit).toMatch(/^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
    expect(unit).toMatch(/^CapabilityBoundingSet=CAP_NET_BIND_SERVICE$/m);
    expect(unit).toMatch(/^NoNewPrivileges=yes$/m);
    expect(unit).toMatch(/^ProtectSystem=strict$/m);
  });
});
