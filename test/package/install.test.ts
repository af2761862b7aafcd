// The npm package installs where there is no compiler: `npm pack` (its prepack
// builds the prebuilt addon with prebuildify), then `npm install <tarball>`
// into a fresh folder with a PATH that holds a node binary and nothing else (no
// g++, cc, make, python3), on the machine's Node 20 and on a pinned Node 24
// (npm itself runs on that runtime, so do the install scripts). The installed
// `mailfront check` must then load the addon from prebuilds/, with no build/.
//
// The package is packed from a copy of the work tree (node_modules linked),
// without build/, dist/ or prebuilds/, as a fresh clone would be. prepack
// (scripts/prebuild.sh) builds the addon against Node 20's headers whichever
// Node runs the pack. Packed once (test/package/pack.mjs: scripts/test.sh packs
// early in the background; the test takes that tarball while the tree is the
// same), installed twice.
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { e2eConfig, e2ePorts, makeTwoDomainPki, ROOT, type RunResult } from '../helpers/mailfront.js';
import { packedTarball } from './pack.mjs';

const tmp = mkdtempSync('/tmp/mf-package-');
let tarball: string;
let config: string;
let node24: string;

/** Never rejects; a bounded time, then SIGKILL. */
function exec(cmd: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number }): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: opts.cwd, env: opts.env, timeout: opts.timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** npm's own script (npm-cli.js), to run it with another node binary. */
function npmCli(): string {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const npm = path.join(dir, 'npm');
    if (dir && existsSync(npm)) return realpathSync(npm);
  }
  throw new Error('npm is not on PATH');
}

beforeAll(async () => {
  // Packed by scripts/test.sh while vitest ran, if the tree is the same; else now.
  tarball = await packedTarball();

  const pki = makeTwoDomainPki(path.join(tmp, 'pki'));
  config = path.join(tmp, 'mailfront.yaml');
  const nothing = { imapPort: 1, pop3Port: 1, sievePort: 1 }; // check needs no backend
  writeFileSync(config, e2eConfig({ letsencrypt: pki.letsencrypt, ports: await e2ePorts(), a: nothing, b: nothing }));

  // A pinned Node 24 (fetched once from the npm registry into .runtimes/).
  node24 = path.join(execFileSync('bash', ['scripts/node-runtime.sh', '24'], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 }).trim(), 'bin', 'node');
}, 480_000);

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('the npm package on a host without a compiler', () => {
  it('ships the prebuilt linux-x64 addon, and no build/', () => {
    const files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n');
    expect(files.filter((f) => /^package\/prebuilds\/linux-x64\/[^/]+\.node$/.test(f))).toHaveLength(1);
    expect(files.filter((f) => f.startsWith('package/build/'))).toEqual([]);
    // the source build stays possible (other platforms, musl)
    expect(files).toContain('package/binding.gyp');
    expect(files).toContain('package/native/addon.cc');
    // the addon for the tests is neither built into the package nor shipped
    expect(files.filter((f) => /mailfront_testing/.test(f))).toEqual([]);
  });

  it('ships what `mailfront demo` runs from scripts/, and nothing from test/', () => {
    const files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n');
    for (const f of ['dist/demo.js', 'scripts/cyrus.sh', 'scripts/dovecot.sh', 'scripts/syslog_catcher.py', 'scripts/demo-certs.sh'])
      expect(files).toContain(`package/${f}`);
    expect(files.filter((f) => f.startsWith('package/test/'))).toEqual([]);
    expect(files).not.toContain('package/dist/pki.js');
  });

  const runtimes = [
    { name: 'Node 20 (the machine\'s)', major: 20, node: () => process.execPath },
    { name: 'Node 24', major: 24, node: () => node24 },
  ];

  for (const rt of runtimes) {
    it(`installs with npm on ${rt.name} and mailfront check loads the prebuilt addon`, async () => {
      const node = rt.node();
      const dir = path.join(tmp, `node${rt.major}`);
      const bin = path.join(dir, 'bin');
      const app = path.join(dir, 'app');
      mkdirSync(bin, { recursive: true });
      mkdirSync(app);
      symlinkSync(node, path.join(bin, 'node'));
      // Only node on PATH (npm adds node_modules/.bin and its node-gyp shim for
      // scripts); npm finds the shell for them by name, so name /bin/sh to it.
      const env = { PATH: bin, HOME: process.env.HOME ?? '/root', LANG: 'C.UTF-8', npm_config_script_shell: '/bin/sh' };
      for (const tool of ['g++', 'gcc', 'cc', 'c++', 'make', 'python3', 'python']) {
        expect(spawnSync('/bin/sh', ['-c', `command -v ${tool}`], { env }).status, `${tool} is reachable`).not.toBe(0);
      }
      const versions = spawnSync('/bin/sh', ['-c', 'node -p "process.versions.node + \' \' + process.versions.openssl"'], { env, encoding: 'utf8' });
      const [nodeVersion, opensslVersion] = versions.stdout.trim().split(' ') as [string, string];
      expect(nodeVersion.split('.')[0]).toBe(String(rt.major));

      writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'mf-install-test', private: true }));
      const install = await exec(node, [npmCli(), 'install', tarball, '--no-audit', '--no-fund', '--prefer-offline', '--foreground-scripts'], { cwd: app, env, timeoutMs: 90_000 });
      expect(install.code, `npm install:\n${install.stdout}\n${install.stderr}`).toBe(0);

      const pkg = path.join(app, 'node_modules', 'mailfront');
      expect(readdirSync(path.join(pkg, 'prebuilds', 'linux-x64')).filter((f) => f.endsWith('.node'))).toHaveLength(1);
      expect(existsSync(path.join(pkg, 'build')), 'a source build happened').toBe(false);
      // the production addon only: no test-only exports (those are native/test_exports.cc's own addon)
      const prebuilt = path.join(pkg, 'prebuilds', 'linux-x64', readdirSync(path.join(pkg, 'prebuilds', 'linux-x64'))[0]!);
      const exported = spawnSync(node, ['-p', `Object.keys(require(${JSON.stringify(prebuilt)})).join(' ')`], { env, encoding: 'utf8' });
      expect(exported.stdout).toContain('Proxy');
      expect(exported.stdout).not.toMatch(/\btest[A-Z]/);

      const r = await exec(path.join(app, 'node_modules', '.bin', 'mailfront'), ['check', '--config', config], { cwd: app, env, timeoutMs: 20_000 });
      // check may warn (an out-of-support runtime, a sieve backend not probed), nothing more
      expect(r.stderr.split('\n').filter((l) => l && !l.startsWith('warning: ') && !/^\{"level":"(warn|info)"/.test(l))).toEqual([]);
      expect(r.code).toBe(0);
      const lines = r.stdout.split('\n');
      expect(lines).toContain(`configuration ${config}: ok`);
      // the addon built against Node 20's OpenSSL 3.0 headers, running on this Node's OpenSSL
      const runtime = lines.filter((l) => l.startsWith('runtime: '));
      expect(runtime).toHaveLength(1);
      expect(runtime[0]).toContain(`Node v${nodeVersion} with OpenSSL ${opensslVersion}`);
      const names = lines.filter((l) => l.startsWith('name ')).map((l) => /^name (\S+):/.exec(l)![1]);
      expect(names.sort()).toEqual(['*.example.net', 'example.net', 'imap.example.com', 'mail.example.com']);
    }, 120_000);
  }
});
