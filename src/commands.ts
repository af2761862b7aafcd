// mailfront's commands: run, check, demo; error codes mapped to exit codes.
// Started by cli.ts.
import { parseArgs } from 'node:util';
import { lookup } from './certs/index.js';
import { exitCodes, MailfrontError } from './errors.js';
import { createLogger } from './log.js';
import { createProxy, NativeError } from './native.js';
import { applyGeneration, prepare, Service, VERSION } from './service.js';
import { runtimeSupport, tlsLibrary } from './tls-library.js';

const USAGE = `mailfront ${VERSION}: a TLS front door for mail servers (SNI certificates for IMAPS, POP3S, ManageSieve, IMAP and POP3 STARTTLS)

Usage:
  mailfront run   --config FILE   serve (SIGHUP reloads certificates, SIGTERM drains and stops)
  mailfront check --config FILE   validate the configuration and every certificate; exit 0 when all is well
  mailfront demo                  a local Cyrus IMAP with two demo domains behind mailfront (as root)
  mailfront demo --with-dovecot   and a third domain on a local Dovecot 2.3, routed by SNI (fetches Debian's packages once)
  mailfront --version | --help

Default config: /etc/mailfront/mailfront.yaml`;

const DEFAULT_CONFIG = '/etc/mailfront/mailfront.yaml';

async function run(configPath: string): Promise<void> {
  const service = new Service({ configPath, signals: true });
  await service.start();
}

/** Like `haproxy -c`: everything a start would check, then what each name is served. */
async function check(configPath: string): Promise<number> {
  const log = createLogger({ level: 'warn', destination: process.stderr });
  const gen = await prepare(configPath, log);
  // OpenSSL itself must accept every pair and the cipher strings.
  const proxy = createProxy(1, () => {});
  applyGeneration(proxy, gen);
  const out: string[] = [`configuration ${configPath}: ok`];
  const runtime = runtimeSupport(tlsLibrary());
  out.push(`runtime: ${runtime.summary}${runtime.problems.length ? ' (out of support)' : ''}; key exchange groups ${gen.config.tls.groups}`);
  for (const p of runtime.problems) console.error(`warning: ${p}`);
  if (runtime.advice) console.error(`warning: ${runtime.advice}`);
  for (const w of gen.warnings) console.error(`warning: ${w}`);
  for (const l of gen.config.listeners) out.push(`listener ${l.name}: ${l.protocol} on ${l.listen.join(', ')} -> ${l.backend}`);
  for (const r of gen.config.routes) out.push(`route ${r.sni}: ${Object.entries(r.backends).map(([l, b]) => `${l} -> ${b}`).join(', ')}`);
  const names = new Set<string>();
  for (const c of gen.certs.certificates) for (const n of c.names) names.add(n);
  for (const name of [...names].sort()) {
    // A wildcard is shown with what a name under it gets.
    const hit = lookup(gen.certs, name.startsWith('*.') ? `wildcard-check${name.slice(1)}` : name);
    const detail = hit.certificates.map((c) => `${c.keyType} ${c.path} until ${c.notAfter.toISOString().slice(0, 10)}${c.expired ? ' EXPIRED' : ''}`);
    out.push(`name ${name}: ${hit.match} -> ${detail.join('; ')}`);
  }
  out.push(`default (no SNI${gen.config.certificates.unknownSni === 'default' ? ', unknown names' : ''}): ${gen.certs.defaultName}`);
  console.log(out.join('\n'));
  const errors = gen.certs.problems.filter((p) => p.level === 'error');
  if (errors.length > 0) {
    console.error(`${errors.length} certificate error(s):\n${errors.map((p) => `  ${p.path}: ${p.message}`).join('\n')}`);
    return exitCodes.MF_CERT_LOAD;
  }
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      version: { type: 'boolean', short: 'V' },
      help: { type: 'boolean', short: 'h' },
      'with-dovecot': { type: 'boolean' },
    },
  });
  if (values.version) {
    console.log(VERSION);
    return 0;
  }
  const command = positionals[0];
  if (values.help || !command) {
    console.log(USAGE);
    return values.help ? 0 : 64;
  }
  const configPath = values.config ?? DEFAULT_CONFIG;
  switch (command) {
    case 'run':
      await run(configPath);
      return -1; // keep running
    case 'check':
      return check(configPath);
    case 'demo': {
      const { runDemo } = await import('./demo.js');
      await runDemo({ withDovecot: values['with-dovecot'] === true });
      return -1;
    }
    default:
      console.error(`mailfront: unknown command "${command}"\n\n${USAGE}`);
      return 64; // EX_USAGE
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    // exitCode, not exit(): a piped stdout gets everything written before the process ends.
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof MailfrontError) {
      // The data plane's refusals name their code: MF_TLS_CONTEXT (OpenSSL), MF_SNAPSHOT_FIELD (a bug of ours).
      console.error(`mailfront: ${err.message}${err instanceof NativeError ? ` (${err.code})` : ''}`);
      process.exit(exitCodes[err.code]);
    }
    if (err instanceof Error && 'code' in err && (err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      console.error(`mailfront: ${err.message}\n\n${USAGE}`);
      process.exit(64);
    }
    console.error('mailfront: unexpected error:', err);
    process.exit(70);
  },
);
