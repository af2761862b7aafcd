// The programmatic API as a consumer gets it: package.json "main" and "types"
// name files the build makes, and start() / reload() / stop() from dist/index.js
// serve, reload and stop like `mailfront run`, with configWarnings logged at warn.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, freePorts, makeTwoDomainPki, ROOT, type TwoDomainPki } from '../helpers/mailfront.js';

type Api = typeof import('../../src/index.js');

const tmp = mkdtempSync('/tmp/mf-api-');
const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { main: string; types: string };
let api: Api;
let pki: TwoDomainPki;
let backend: net.Server;
let backendPort: number;

beforeAll(async () => {
  await ensureBuilt();
  api = (await import(pathToFileURL(path.join(ROOT, pkg.main)).href)) as Api;
  pki = makeTwoDomainPki(path.join(tmp, 'pki'));
  backend = net.createServer((s) => s.end('* OK backend here\r\n'));
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  backendPort = (backend.address() as net.AddressInfo).port;
});

afterAll(async () => {
  await new Promise((r) => backend?.close(r));
  rmSync(tmp, { recursive: true, force: true });
});

function greeting(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'mail.example.com', ca: pki.ca.rootPem, timeout: 5000 });
    s.once('data', (d) => (resolve(String(d)), s.destroy()));
    s.on('error', reject);
    s.on('timeout', () => s.destroy(new Error('no greeting')));
  });
}

describe('the programmatic API (package.json main)', () => {
  it('main and types name files the build makes', () => {
    expect(existsSync(path.join(ROOT, pkg.main))).toBe(true);
    expect(existsSync(path.join(ROOT, pkg.types))).toBe(true);
    expect(Object.keys(api).sort()).toEqual(['ErrorCodes', 'MailfrontError', 'Service', 'VERSION', 'createLogger', 'loadConfig', 'start']);
  });

  it('loads a config, starts, reloads (and refuses a broken one), stops', async () => {
    const [port] = (await freePorts(1)) as [number];
    const configPath = path.join(tmp, 'mailfront.yaml');
    const yaml = `certificates: {letsencrypt: [${pki.letsencrypt}], default: mail.example.com}
listeners:
  - {name: imaps, protocol: imaps, listen: ["127.0.0.1:${port}"], backend: be}
backends:
  be: {servers: ["127.0.0.1:${backendPort}"]}
timeouts: {idle: 5m, drain: 1s}
workers: 1
metrics: false
`;
    writeFileSync(configPath, yaml);
    expect((await api.loadConfig(configPath)).listeners.map((l) => l.name)).toEqual(['imaps']);

    const lines: { level: string; msg: string }[] = [];
    const logger = api.createLogger({ level: 'info', destination: { write: (s: string) => void lines.push(JSON.parse(s)) } });
    const mf = await api.start({ configPath, logger });
    try {
      expect(mf.bound).toEqual([{ name: 'imaps', addresses: [`127.0.0.1:${port}`] }]);
      expect(await greeting(port)).toBe('* OK backend here\r\n');
      // configWarnings, logged as `mailfront run` logs them
      expect(lines.filter((l) => l.level === 'warn').map((l) => l.msg)).toContainEqual(expect.stringMatching(/^timeouts\.idle is under 30m/));

      expect(await mf.reload('api test')).toBe(true);
      writeFileSync(configPath, yaml.replace('backend: be}', 'backend: nowhere}'));
      expect(await mf.reload('broken config')).toBe(false);
      expect(lines.some((l) => l.msg.startsWith('reload failed'))).toBe(true);
      expect(await greeting(port)).toBe('* OK backend here\r\n');
    } finally {
      await mf.stop();
    }
    await expect(greeting(port)).rejects.toThrow(/ECONNREFUSED/);
  });

  it('a stop that begins while a reload is in flight (its check runs off the JS thread): the reload applies nothing and answers false', async () => {
    const [port] = (await freePorts(1)) as [number];
    const configPath = path.join(tmp, 'stop-midway.yaml');
    writeFileSync(
      configPath,
      `certificates: {letsencrypt: [${pki.letsencrypt}], default: mail.example.com}
listeners:
  - {name: imaps, protocol: imaps, listen: ["127.0.0.1:${port}"], backend: be}
backends:
  be: {servers: ["127.0.0.1:${backendPort}"]}
workers: 1
metrics: false
`,
    );
    const lines: { msg: string }[] = [];
    const logger = api.createLogger({ level: 'info', destination: { write: (s: string) => void lines.push(JSON.parse(s)) } });
    const mf = await api.start({ configPath, logger });
    // reload() runs up to its first await (the config read), stop() then marks the service as stopping.
    const reloaded = mf.reload('stopped midway');
    await mf.stop();
    expect(await reloaded).toBe(false);
    expect(lines.map((l) => l.msg)).not.toContain('reloaded');
    await expect(greeting(port)).rejects.toThrow(/ECONNREFUSED/);
  });
});
