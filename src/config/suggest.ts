// "Did you mean": the known name a misspelt key or reference most likely meant.

function levenshtein(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

/** Names people reach for from other tools (HAProxy, nginx, Dovecot), by normalized spelling. */
const ALIASES: Record<string, string> = {
  certdir: 'pem_dirs', certdirs: 'pem_dirs', crt: 'pem_dirs', crtdir: 'pem_dirs', crtdirs: 'pem_dirs',
  pemdir: 'pem_dirs', pem: 'pem_dirs', pems: 'pem_dirs', le: 'letsencrypt', certbot: 'letsencrypt',
  acme: 'letsencrypt', cert: 'certificates', certs: 'certificates', ssl: 'tls', bind: 'listen',
  address: 'listen', addresses: 'listen', port: 'listen', upstream: 'backends', upstreams: 'backends',
  server: 'servers', proxy: 'proxy_protocol', sendproxy: 'proxy_protocol', proxyv2: 'proxy_protocol',
  threads: 'workers', logging: 'log', loglevel: 'level', minprotocol: 'min_version', protocols: 'min_version',
  ciphersuite: 'ciphersuites', tls13ciphers: 'ciphersuites', maxconn: 'connections', perip: 'per_client',
  defaultcert: 'default', sni: 'routes', route: 'routes', fallback: 'unknown_sni', timeout: 'timeouts',
};

function norm(key: string): string {
  return key.toLowerCase().replace(/[_\-\s]/g, '');
}

/** The known key that `key` most likely meant, or undefined. */
export function suggestKey(key: string, known: readonly string[]): string | undefined {
  const n = norm(key);
  for (const k of known) if (norm(k) === n || norm(k) === `${n}s` || `${norm(k)}s` === n) return k;
  const alias = ALIASES[n];
  if (alias && known.includes(alias)) return alias;
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = levenshtein(n, norm(k));
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(norm(best).length / 3)) ? best : undefined;
}


/** "no backend named \"x\"", with the likely name or the known ones. */
export function unknownRef(kind: string, value: string, known: Set<string>): string {
  const names = [...known];
  const hint = suggestKey(value, names);
  return `no ${kind} named "${value}"${hint ? ` (did you mean "${hint}"?)` : names.length ? ` (${kind}s: ${names.join(', ')})` : ''}`;
}

