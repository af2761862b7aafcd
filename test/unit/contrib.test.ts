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

describe('contrib/ fail2ban filter', () => {
  it('fail2ban-regex finds the client of each failed login in real log lines, and only there', async () => {
    const { Writable } = await import('node:stream');
    const { createLogger, child, logNativeEvents } = await import('../../src/log.js');
    const lines: string[] = [];
    const destination = new Writable({ write(c: Buffer, _e, cb) { lines.push(c.toString()); cb(); } });
    const login = (o: Record<string, string>) => ({
      kind: 'login' as const,
      login: { listener: 'imaps', protocol: 'imaps' as const, client: '203.0.113.7:5123', network: '203.0.113.7', sni: 'mail.example.org', user: 'alice', mech: 'LOGIN', result: 'failure' as const, ...o },
    });
    logNativeEvents(child(createLogger({ destination }), 'conn'), [
      login({}),
      login({ client: '[2001:db8::7]:993', network: '2001:db8::/64' }),
      login({ client: '198.51.100.9:1', result: 'success' }),
      login({ client: '198.51.100.9:2', result: 'error' }),
      // A client choosing its user name or SNI cannot name another address.
      login({ client: '198.51.100.10:2', user: '","client":"192.0.2.66:1","result":"failure' }),
      login({ client: '198.51.100.11:3', sni: 'x","client":"192.0.2.77:1' }),
      { kind: 'ban', network: '203.0.113.7', listener: 'imaps', banMs: 1000, failures: 10 },
    ]);
    const dir = mkdtempSync('/tmp/mf-f2b-');
    try {
      writeFileSync(path.join(dir, 'mailfront.log'), lines.join(''));
      const r = spawnSync('fail2ban-regex', ['-o', 'ip', path.join(dir, 'mailfront.log'), path.join(contrib, 'fail2ban-mailfront.conf')], { encoding: 'utf8', timeout: 30_000 });
      expect(r.error).toBeUndefined();
      expect(r.status).toBe(0);
      expect(r.stdout.trim().split('\n')).toEqual(['203.0.113.7', '2001:db8::7', '198.51.100.10', '198.51.100.11']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the jail mirrors mailfront\'s defaults and uses the filter', () => {
    const jail = readFileSync(path.join(contrib, 'fail2ban-jail-mailfront.conf'), 'utf8');
    expect(jail).toMatch(/^filter\s+= mailfront$/m);
    expect(jail).toMatch(/^maxretry = 10$/m);
    expect(jail).toMatch(/^findtime = 10m$/m);
    expect(jail).toMatch(/^bantime\s+= 15m$/m);
  });
});
