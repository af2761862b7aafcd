// Reading the configuration file: YAML with positions, the schema, and error
// messages that point at FILE:LINE:COL with the key path.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import { MailfrontError } from '../errors.js';
import { defaultGroups, opensslShortVersion, SECURITY_LEVEL, tlsLibrary, type TlsLibrary } from '../tls-library.js';
import { ConfigSchema, crossCheck, toConfig, type Config, type RawConfig, type SchemaIssue } from './schema.js';

export interface ConfigIssue {
  file: string;
  /** 1-based. */
  line: number;
  /** 1-based. */
  col: number;
  /** "listeners[0].backend"; "" for the document itself. */
  path: string;
  message: string;
}

/** MF_CONFIG_INVALID with every problem found; `message` holds one "FILE:LINE:COL: path: message" line per issue. */
export class ConfigError extends MailfrontError {
  readonly issues: readonly ConfigIssue[];
  constructor(issues: ConfigIssue[]) {
    super('MF_CONFIG_INVALID', issues.map(formatIssue).join('\n'));
    this.issues = issues;
  }
}

export function formatIssue(i: ConfigIssue): string {
  return `${i.file}:${i.line}:${i.col}: ${i.path === '' ? '(document)' : i.path}: ${i.message}`;
}

/** ["listeners", 0, "listen", 1] -> "listeners[0].listen[1]". */
export function formatPath(p: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of p) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else {
      const s = String(seg);
      out += /^[A-Za-z0-9_-]+$/.test(s) ? (out === '' ? s : `.${s}`) : `[${JSON.stringify(s)}]`;
    }
  }
  return out;
}

/** Object.freeze, all the way down. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** Where a path lands in the document: the value node (or the key with atKey), else the nearest existing parent. */
function locate(doc: Document, lc: LineCounter, p: readonly PropertyKey[], atKey: boolean): { line: number; col: number } {
  let node: unknown = doc.contents;
  let key: Node | undefined;
  let fullyFound = true;
  for (const seg of p) {
    if (isMap(node)) {
      const pair = node.items.find((it) => isPair(it) && (isScalar(it.key) ? String(it.key.value) : String(it.key)) === String(seg));
      if (!pair) {
        fullyFound = false;
        break;
      }
      key = isScalar(pair.key) ? pair.key : undefined;
      node = pair.value ?? key;
    } else if (isSeq(node) && typeof seg === 'number' && node.items[seg] !== undefined) {
      node = node.items[seg];
      key = node as Node;
    } else {
      fullyFound = false;
      break;
    }
  }
  let target = (fullyFound && atKey && key) || node;
  // `key:` with nothing after it: a null scalar without a useful range; point at the key.
  if ((target as Node | null)?.range === undefined || (isScalar(target) && target.value === null && key)) target = key ?? target;
  const offset = (target as Node | undefined)?.range?.[0] ?? 0;
  return lc.linePos(offset);
}

/** tls.groups against the running library: a group it lacks would fail every handshake that needs it. */
function checkGroups(raw: RawConfig, lib: TlsLibrary): SchemaIssue[] {
  const missing = (raw.tls.groups ?? '').split(':').filter((g) => g !== '' && !lib.hasGroup(g));
  if (!missing.length) return [];
  const hybrid = missing.some((g) => /MLKEM/i.test(g)) ? ': ML-KEM groups need OpenSSL 3.5 or later (Node 22.20+, 24, 26)' : '';
  const what = missing.map((g) => `"${g}"`).join(', ');
  return [{ path: ['tls', 'groups'], message: `group ${what} is not offered by OpenSSL ${opensslShortVersion(lib)}, the library mailfront runs on${hybrid}` }];
}

/**
 * A custom tls.ciphers, judged by what the running OpenSSL expands it to (keywords such as HIGH or
 * ECDHE+AESGCM included): every suite must be ECDHE (forward secrecy), authenticated by the
 * certificate (RSA or ECDSA: no anonymous or PSK suite) and AES-GCM or ChaCha20-Poly1305 (no CBC, no NULL
 * encryption, no CCM/CCM8, ARIA or Camellia, which no profile lists), and
 * the string must not move OpenSSL's security level off mailfront's.
 */
function checkCiphers(raw: RawConfig, lib: TlsLibrary): SchemaIssue[] {
  const list = raw.tls.ciphers;
  if (list === 'intermediate' || list === 'modern') return [];
  const at = ['tls', 'ciphers'];
  const expanded = lib.cipherList(list);
  if ('error' in expanded) return [{ path: at, message: `"${list}" is refused by OpenSSL ${opensslShortVersion(lib)}: ${expanded.error}` }];
  const issues: SchemaIssue[] = [];
  if (expanded.securityLevel !== SECURITY_LEVEL) {
    issues.push({ path: at, message: `"@SECLEVEL=${expanded.securityLevel}" is refused: mailfront runs OpenSSL at security level ${SECURITY_LEVEL} (its certificate checks assume it); remove it` });
  }
  const weak = expanded.suites.flatMap((s) => {
    const why: string[] = [];
    if (s.auth === 'NULL') why.push('anonymous');
    else if (s.auth !== 'RSA' && s.auth !== 'ECDSA') why.push(`${s.auth} authentication`);
    if (s.kx !== 'ECDHE') why.push(s.kx === 'RSA' ? 'RSA key transport, no forward secrecy' : `${s.kx} key exchange`);
    if (!s.aead) why.push('not AEAD');
    // AEAD, but off every profile: CCM and CCM8 (an 8-byte tag), ARIA, Camellia.
    else if (!/(^|-)(AES(128|256)-GCM|CHACHA20-POLY1305)(-|$)/.test(s.name)) why.push('not AES-GCM or ChaCha20-Poly1305');
    return why.length ? [`${s.name} (${why.join(', ')})`] : [];
  });
  if (weak.length) {
    const shown = weak.length > 6 ? `${weak.slice(0, 6).join(', ')} and ${weak.length - 6} more` : weak.join(', ');
    issues.push({
      path: at,
      message: `"${list}" gives suites that are not ECDHE with an AEAD cipher: ${shown}; list ECDHE suites with AES-GCM or CHACHA20-POLY1305 only (e.g. ECDHE+AESGCM:ECDHE+CHACHA20), or use intermediate`,
    });
  }
  return issues;
}

/**
 * Parse and validate a configuration text. `file` names it in messages and anchors relative paths.
 * `lib`: the TLS library the data plane will run on (tls.groups is checked against it). Throws ConfigError.
 */
export function parseConfig(text: string, file: string, lib: TlsLibrary = tlsLibrary()): Config {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const issues: ConfigIssue[] = [];
  const at = (offset: number) => lc.linePos(offset);

  if (doc.errors.length) {
    for (const e of doc.errors) {
      const { line, col } = at(e.pos[0]);
      issues.push({ file, line, col, path: '', message: `YAML syntax: ${e.message.split('\n')[0]}` });
    }
    throw new ConfigError(issues);
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ConfigError([{ file, line: 1, col: 1, path: '', message: `YAML: ${(err as Error).message}` }]);
  }
  if (raw === null || raw === undefined) {
    throw new ConfigError([{ file, line: 1, col: 1, path: '', message: 'the file is empty: it needs at least listeners, backends and certificates' }]);
  }
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError([{ file, line: 1, col: 1, path: '', message: 'the top level must be a mapping (key: value), not a list or a scalar' }]);
  }

  const found: SchemaIssue[] = [];
  const result = ConfigSchema.safeParse(raw);
  if (!result.success) {
    for (const iss of result.error.issues) {
      const p = iss.path.map((s) => (typeof s === 'symbol' ? String(s) : s));
      if (iss.code === 'unrecognized_keys') {
        const lines = iss.message.split('\n');
        iss.keys.forEach((k, i) => found.push({ path: [...p, k], atKey: true, message: lines[i] ?? `unknown key "${k}"` }));
      } else {
        found.push({ path: p, message: iss.message });
      }
    }
  }
  found.push(...crossCheck(raw));
  if (result.success) found.push(...checkGroups(result.data, lib), ...checkCiphers(result.data, lib));

  if (found.length || !result.success) {
    const seen = new Set<string>();
    for (const f of found) {
      const { line, col } = locate(doc, lc, f.path, f.atKey ?? false);
      const issue = { file, line, col, path: formatPath(f.path), message: f.message };
      const k = formatIssue(issue);
      if (!seen.has(k)) {
        seen.add(k);
        issues.push(issue);
      }
    }
    issues.sort((a, b) => a.line - b.line || a.col - b.col);
    throw new ConfigError(issues);
  }
  return deepFreeze(toConfig(result.data, path.dirname(path.resolve(file)), defaultGroups(lib)));
}

/** Read and parse a configuration file. Throws MailfrontError MF_CONFIG_READ or ConfigError (MF_CONFIG_INVALID). */
export async function loadConfig(file: string, lib?: TlsLibrary): Promise<Config> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.code === 'EISDIR' ? 'is a directory' : e.message;
    throw new MailfrontError('MF_CONFIG_READ', `${file}: cannot read the configuration: ${why}${e.code ? ` (${e.code})` : ''}`, { cause: err });
  }
  return parseConfig(text, file, lib);
}
