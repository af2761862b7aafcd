// `mailfront demo`: a real Cyrus IMAP for two demo domains behind mailfront,
// on loopback, with a throwaway CA; shows what each domain's clients get and
// the commands to try, runs until Ctrl-C, then cleans up after itself.
// --with-dovecot adds example.org on a real Dovecot 2.3 (scripts/dovecot.sh),
// routed by SNI with PROXY v2-ssl: a migration in progress, on one machine.
// The servers and the certificates come from scripts/ (cyrus.sh, dovecot.sh,
// demo-certs.sh), which the package ships beside dist/.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { createLogger } from './log.js';
import { Service } from './service.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CYRUS_SCRIPT = path.join(root, 'scripts', 'cyrus.sh');
const DOVECOT_SCRIPT = path.join(root, 'scripts', 'dovecot.sh');
const CERTS_SCRIPT = path.join(root, 'scripts', 'demo-certs.sh');
const DOVECOT_BASE = 21500;
const DIR = '/tmp/mailfront-demo';
const CYRUS_BASE = 21100;
const PORTS = { imaps: 10993, imap: 10143, pop3s: 10995, sieve: 10190, metrics: 19187 };
const DOMAINS = [
  { domain: 'example.com', name: 'mail.example.com', user: 'alice@example.com' },
  { domain: 'example.net', name: 'imap.example.net', user: 'bob@example.net' },
];
const DOVECOT_DOMAIN = { domain: 'example.org', name: 'mail.example.org', user: 'carol@example.org' };

/** example.org still on Dovecot: the route docs/migrating-dovecot-to-cyrus.md removes at the cut-over. */
function dovecotYaml(): string {
  return `  dovecot-imap: {servers: ["127.0.0.1:${DOVECOT_BASE}"], proxy_protocol: v2-ssl}
  dovecot-pop3: {servers: ["127.0.0.1:${DOVECOT_BASE + 1}"], proxy_protocol: v2-ssl}
  dovecot-sieve: {servers: ["127.0.0.1:${DOVECOT_BASE + 2}"], proxy_protocol: v2-ssl}
routes:
  - sni: mail.example.org
    backends: {imaps: dovecot-imap, imap: dovecot-imap, pop3s: dovecot-pop3, sieve: dovecot-sieve}
`;
}

function configYaml(le: string, cyrusDir: string, withDovecot: boolean): string {
  return `# Written by mailfront demo
certificates:
  letsencrypt: [${le}]
  default: mail.example.com
listeners:
  - {name: imaps, protocol: imaps, listen: ["127.0.0.1:${PORTS.imaps}"], backend: cyrus-imap}
  - {name: imap, protocol: imap, listen: ["127.0.0.1:${PORTS.imap}"], backend: cyrus-imap}
  - {name: pop3s, protocol: pop3s, listen: ["127.0.0.1:${PORTS.pop3s}"], backend: cyrus-pop3}
  - {name: sieve, protocol: managesieve, listen: ["127.0.0.1:${PORTS.sieve}"], backend: cyrus-sieve}
backends:
  cyrus-imap: {servers: ["127.0.0.1:${CYRUS_BASE}"]}
  cyrus-pop3: {servers: ["127.0.0.1:${CYRUS_BASE + 1}"]}
  cyrus-sieve: {servers: ["127.0.0.1:${CYRUS_BASE + 2}"]}
${withDovecot ? dovecotYaml() : ''}workers: 2
metrics: {listen: "127.0.0.1:${PORTS.metrics}"}
log: {level: info}
# Cyrus instance: ${cyrusDir}
`;
}

/** What a client asking for <name> on IMAPS sees: the certificate, its verification, the greeting. */
function probe(name: string, ca: string): Promise<string> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port: PORTS.imaps, servername: name, ca, timeout: 5000 }, () => {
      const cert = s.getPeerCertificate();
      s.once('data', (d) => {
        resolve(
          `  ${name}: certificate for ${cert.subjectaltname} (verified: ${s.authorized ? 'yes' : s.authorizationError}), ` +
            `${s.getProtocol()} ${s.getCipher().name}\n    greeting: ${String(d).trim().slice(0, 100)}`,
        );
        s.end();
      });
    });
    s.on('error', (e) => resolve(`  ${name}: ${e.message}`));
    s.on('timeout', () => s.destroy(new Error('timed out')));
  });
}

export async function runDemo(opts: { withDovecot?: boolean } = {}): Promise<void> {
  const withDovecot = opts.withDovecot === true;
  if (process.getuid?.() !== 0) throw new Error('the demo starts a Cyrus IMAP server and needs root');
  if (!existsSync('/usr/lib/cyrus/bin/master')) throw new Error('Cyrus is not installed: run `bash scripts/install-deps.sh` first');
  const cyrusDir = path.join(DIR, 'cyrus');
  const dovecotDir = path.join(DIR, 'dovecot');
  spawnSync('bash', [CYRUS_SCRIPT, 'stop', cyrusDir], { stdio: 'ignore', timeout: 20_000 });
  spawnSync('bash', [DOVECOT_SCRIPT, 'stop', dovecotDir], { stdio: 'ignore', timeout: 20_000 });
  rmSync(DIR, { recursive: true, force: true });
  mkdirSync(DIR, { recursive: true });

  console.log(`mailfront demo: making a throwaway CA and certificates for ${withDovecot ? 'three' : 'two'} domains...`);
  // Lineage folders named unlike their names: mailfront indexes by subjectAltName.
  const lineages = ['first-lineage=mail.example.com,imap.example.com', 'second-lineage=*.example.net,example.net'];
  if (withDovecot) lineages.push('third-lineage=mail.example.org');
  execFileSync('bash', [CERTS_SCRIPT, DIR, ...lineages], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 60_000 });
  const le = path.join(DIR, 'letsencrypt');
  const caFile = path.join(DIR, 'ca.pem');
  const caPem = readFileSync(caFile, 'utf8');

  console.log(`mailfront demo: starting Cyrus IMAP on 127.0.0.1:${CYRUS_BASE}-${CYRUS_BASE + 3} (takes a few seconds)...`);
  try {
    execFileSync('bash', [CYRUS_SCRIPT, 'start', cyrusDir, String(CYRUS_BASE)], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 120_000 });
  } catch (err) {
    rmSync(DIR, { recursive: true, force: true });
    throw err;
  }
  const cleanup = () => {
    spawnSync('bash', [CYRUS_SCRIPT, 'stop', cyrusDir], { stdio: 'ignore', timeout: 20_000 });
    if (withDovecot) spawnSync('bash', [DOVECOT_SCRIPT, 'stop', dovecotDir], { stdio: 'ignore', timeout: 20_000 });
    rmSync(DIR, { recursive: true, force: true });
  };
  if (withDovecot) {
    console.log(`mailfront demo: starting Dovecot 2.3 on 127.0.0.1:${DOVECOT_BASE}-${DOVECOT_BASE + 4} (the first time fetches Debian's packages)...`);
    try {
      execFileSync('bash', [DOVECOT_SCRIPT, 'start', dovecotDir, String(DOVECOT_BASE)], {
        stdio: ['ignore', 'ignore', 'inherit'],
        timeout: 180_000,
        env: { ...process.env, DOVECOT_USERS: `${DOVECOT_DOMAIN.user}:secret` },
      });
    } catch (err) {
      cleanup();
      throw err;
    }
  }

  const configPath = path.join(DIR, 'mailfront.yaml');
  writeFileSync(configPath, configYaml(le, cyrusDir, withDovecot));
  const logFile = path.join(DIR, 'mailfront.log');
  const logger = createLogger({ level: 'info', destination: (await import('pino')).pino.destination({ dest: logFile, sync: true }) });
  let service: Service;
  try {
    service = new Service({ configPath, logger });
    await service.start();
  } catch (err) {
    cleanup();
    throw err;
  }

  console.log(`\nWhat each domain's IMAPS clients see through mailfront (one port, ${withDovecot ? 'three' : 'two'} certificates):`);
  for (const d of withDovecot ? [...DOMAINS, DOVECOT_DOMAIN] : DOMAINS) console.log(await probe(d.name, caPem));
  const dovecotHelp = withDovecot
    ? `
  # example.org is on Dovecot (carol@example.org / secret), which logs the real client and "secured":
  sieve-connect --nosrv -s 127.0.0.1 -p ${PORTS.sieve} --tlshostname mail.example.org --tlscafile ${caFile} -u carol@example.org -m PLAIN --list
  grep 'Login:' ${path.join(dovecotDir, 'log', 'dovecot.log')}`
    : '';
  console.log(`
Try it (password "secret" for every user; logs: tail -f ${logFile}):
  curl -s --cacert ${caFile} --connect-to mail.example.com:${PORTS.imaps}:127.0.0.1:${PORTS.imaps} \\
       -u alice@example.com:secret 'imaps://mail.example.com:${PORTS.imaps}/INBOX'
  openssl s_client -connect 127.0.0.1:${PORTS.imaps} -servername imap.example.net -verify_hostname imap.example.net -CAfile ${caFile} -brief
  openssl s_client -connect 127.0.0.1:${PORTS.sieve} -starttls sieve -servername mail.example.com -verify_hostname mail.example.com -CAfile ${caFile} -brief
  openssl s_client -connect 127.0.0.1:${PORTS.imap} -starttls imap -servername imap.example.net -verify_hostname imap.example.net -CAfile ${caFile} -brief
  sieve-connect --nosrv -s 127.0.0.1 -p ${PORTS.sieve} --tlshostname mail.example.com --tlscafile ${caFile} -u alice@example.com -m PLAIN --list
  curl -s http://127.0.0.1:${PORTS.metrics}/metrics | grep ^mailfront_
  kill -HUP ${process.pid}    # reload certificates${dovecotHelp}

mailfront demo is running (pid ${process.pid}); Ctrl-C stops it and removes ${DIR}.`);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    console.log('\nmailfront demo: stopping...');
    await service.stop();
    cleanup();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
  process.on('SIGHUP', () => void service.reload('SIGHUP'));
  // The demo can also run for a bounded time (CI smoke test): MAILFRONT_DEMO_SECONDS=5.
  const seconds = Number(process.env.MAILFRONT_DEMO_SECONDS ?? 0);
  if (seconds > 0) setTimeout(() => void stop(), seconds * 1000);
  setInterval(() => {}, 1 << 30); // stay alive until a signal
}
