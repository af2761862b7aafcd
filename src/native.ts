// The only file that loads the addon: the typed boundary between the control
// plane (TypeScript) and the data plane (native/, C++ worker threads).
// Everything handed to native here is already validated and normalized.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { MailfrontError, type ErrorCode } from './errors.js';

export type Protocol = 'imaps' | 'pop3s' | 'imap' | 'pop3' | 'managesieve';

/** A listening socket set, bound by native at start(). */
export interface NativeListener {
  name: string;
  protocol: Protocol;
  /** "127.0.0.1:993", "[::]:993", "0.0.0.0:0" (port 0: any free port). */
  addresses: string[];
  /** Already listening sockets (systemd socket activation); used instead of binding. */
  fds?: number[];
}

/**
 * A certificate/key pair the addon parsed and checked (checkCertificates): an opaque handle to
 * the parsed objects, which the snapshot's SSL_CTXs use as they are. No key material in JS.
 */
export type NativeCertPair = { readonly __brand: 'NativeCertPair' };

/** One SSL_CTX. Several key types (ECDSA and RSA) for the same names share one. */
export interface NativeCertContext {
  /** One checked pair per key type. */
  certs: NativeCertPair[];
}

/** A pair's files for checkCertificates to read (src/certs/sources.ts Candidate). */
export interface CertFiles {
  certPath: string;
  keyPath: string;
  combined: boolean;
}

/**
 * The addon's check of one pair (native/cert_check.h), in the order of the checks: the first
 * that fails is the error. `at` is a certificate's index in the file (0: the leaf; for "mismatch"
 * the certificate the key belongs to, -1 for none; for "weak" 0 is the key) or a key's index.
 */
export type CertCheck =
  | { error: 'cert-parse' | 'key-parse'; at: number; detail?: string }
  | { error: 'mismatch'; at: number; keyType: string; certType: string }
  | { error: 'weak'; at: number; detail: string }
  | { error: 'signature'; at: number }
  | { error: 'weak-signature'; at: number; detail: string }
  /** Given by path: the files were not plain (native/pem_files.h); src/certs/read.ts reads them. */
  | { unread: true }
  | {
      /** subjectAltName dNSName entries as written; cn: the subject's first CN ("" if none). */
      sanDns: string[];
      cn: string;
      /** Of the leaf's public key: "ec", "rsa", "rsa-pss", "ed25519", ... */
      keyType: string;
      /** ms since the epoch. */
      notBefore: number;
      notAfter: number;
      fingerprint256: string;
      serial: string;
      /** One line: "C=US, O=..., CN=...". */
      issuer: string;
      ca: boolean;
      /** False when an extendedKeyUsage is present without serverAuth. */
      serverAuth: boolean;
      /** -2 fine; -1 no chain, self-signed; 0 no chain; k > 0: certificate #k+1 did not issue #k. */
      chain: number;
      chainLength: number;
      keyIndex: number;
      pair: NativeCertPair;
    };

export interface NativeBackend {
  name: string;
  /** "host:port", "[v6]:port" or an absolute unix socket path. */
  servers: string[];
  /** v2-ssl: v2 with HAProxy's send-proxy-v2-ssl TLVs (TLS version, cipher, SNI, CRC32C). */
  proxyProtocol: 'off' | 'v1' | 'v2' | 'v2-ssl';
  balance: 'first' | 'roundrobin';
}

/** Listener policy, indexed like the listeners given to start(). */
export interface NativeListenerPolicy {
  name: string;
  protocol: Protocol;
  /** Index into snapshot.backends. */
  backend: number;
  /** First match wins: exact lowercase name, or "*.suffix" (one label). */
  routes: { sni: string; backend: number }[];
  /**
   * Pre-TLS capability text, protocol-specific (STARTTLS front-ends only):
   * imap: "IMAP4rev1 STARTTLS LOGINDISABLED" (atoms);
   * pop3: CAPA lines, each ending in CRLF, without the final ".";
   * managesieve: quoted capability lines, each ending in CRLF, without "OK".
   */
  capabilities: string;
  /** ALPN protocol id this listener accepts when a client offers ALPN (ALPACA). */
  alpn: string;
  /**
   * Behind an L4 balancer: every connection starts with a PROXY protocol
   * header (v1 or v2) from an address in trustedProxies; the client it names
   * replaces the peer (per-client limit, record, PROXY header to the backend).
   */
  acceptProxy: boolean;
  /** CIDR blocks ("10.0.0.0/8", "::1/128") allowed to send the header; not empty with acceptProxy. */
  trustedProxies: string[];
}

/**
 * Every field is required: the data plane has no defaults (src/config/schema.ts holds them) and
 * refuses a snapshot with a field missing, of the wrong type or out of range (MF_SNAPSHOT_FIELD,
 * naming the field's path).
 */
export interface NativeSnapshot {
  contexts: NativeCertContext[];
  /** Lowercase DNS name -> index into contexts. */
  exact: Record<string, number>;
  /** "example.org" for a "*.example.org" certificate -> index into contexts. */
  wildcard: Record<string, number>;
  /** Served without SNI, and for unknown names when unknownSni is "default". */
  defaultContext: number;
  unknownSni: 'default' | 'reject';
  tls: {
    minVersion: 'TLSv1.2' | 'TLSv1.3';
    /** OpenSSL cipher string for TLS 1.2. */
    ciphers: string;
    /** OpenSSL ciphersuites string for TLS 1.3. */
    ciphersuites: string;
    /** Key-exchange groups, an OpenSSL group list ("X25519MLKEM768:X25519:P-256"); required. */
    groups: string;
    /** After a TLS 1.3 handshake: mailfront's own record layer (the SSL freed), or OpenSSL's to the end. */
    recordLayer: 'mailfront' | 'openssl';
    /**
     * Session-ticket keys, 80 bytes each (name 16, HMAC 32, AES 32); newest first. Empty: native makes and rotates its own.
     * apply() copies them and overwrites these Buffers with zeros (also when it refuses the snapshot): pass them once.
     */
    ticketKeys: Buffer[];
  };
  backends: NativeBackend[];
  listeners: NativeListenerPolicy[];
  timeouts: { handshakeMs: number; pretlsMs: number; connectMs: number; idleMs: number };
  limits: {
    connections: number;
    perClient: number;
    lineBytes: number;
    /** Follow logins after TLS (login events, bans). */
    loginTracking: boolean;
    /** Failed logins within windowMs that ban the client network for banMs; count 0: no bans. */
    loginFailures: { count: number; windowMs: number; banMs: number };
    /** New connections per minute per client network; 0: unlimited. */
    connectionRate: number;
    /** An IPv6 client network is its /ipv6Prefix. */
    ipv6Prefix: number;
    /** CIDR blocks no per-client limit (per_client, rate, bans) applies to. */
    exempt: string[];
  };
}

/** One finished connection, as the data plane saw it. */
export interface ConnectionRecord {
  listener: string;
  protocol: Protocol;
  /** Client "ip:port" ([v6]:port). */
  client: string;
  /** The server of the pool the connection was relayed to ("ip:port", [v6]:port or a unix path), or "" if none. */
  server: string;
  /** Local "ip:port" of the server-side socket: what Cyrus logs as the peer. */
  serverLocal: string;
  /** Backend pool name chosen by routing, or "". */
  pool: string;
  sni: string;
  tlsVersion: string;
  cipher: string;
  /** Key-exchange group of the handshake ("X25519MLKEM768", "X25519"), or "" without one. */
  group: string;
  resumed: boolean;
  /** Plaintext bytes client -> backend and backend -> client. */
  bytesIn: number;
  bytesOut: number;
  handshakeMs: number;
  connectMs: number;
  durationMs: number;
  /**
   * Why it ended: one name of the addon's closeReasons (native/close_reason.h): "client_closed",
   * "backend_closed", "handshake_failed", "backend_unavailable", "idle_timeout", ...
   */
  reason: string;
  /** Detail for failures (OpenSSL error text, errno text); never key material. */
  detail: string;
  /**
   * Logins seen after TLS: "off" (not watched: login tracking off, or no handshake), "none",
   * "success", "failure" (failures only), "bound" (watching stopped at its byte bound without a success).
   */
  login: 'off' | 'none' | 'success' | 'failure' | 'bound';
  /** The user of the last login outcome (the successful one when there is one), or "". */
  user: string;
  loginFailures: number;
}

/** One login outcome seen after TLS. Never a password or a SASL payload. */
export interface LoginRecord {
  listener: string;
  protocol: Protocol;
  client: string;
  /** The client network limits count against: "203.0.113.7" or "2001:db8:1:2::/64". */
  network: string;
  sni: string;
  /** "" when the exchange does not show it (SASL mechanisms other than PLAIN, LOGIN, SCRAM). */
  user: string;
  /** "LOGIN" (IMAP command), "USER" (POP3 USER/PASS), "APOP", or the SASL mechanism. */
  mech: string;
  /** success: OK / +OK; failure: NO / -ERR; error: BAD / BYE (no verdict on the password). */
  result: 'success' | 'failure' | 'error';
}

export interface NativeEvent {
  /** "dropped": connection records left out because the JS thread fell behind (see maxPendingEvents). */
  kind: 'connection' | 'error' | 'dropped' | 'login' | 'ban' | 'ban_ended';
  record?: ConnectionRecord;
  login?: LoginRecord;
  /** ban, ban_ended: the client network. */
  network?: string;
  /** ban: its length from now, and the failures that led to it. */
  banMs?: number;
  failures?: number;
  /** For kind "error": what happened (e.g. accept failing with EMFILE). */
  message?: string;
  listener?: string;
  /** For kind "dropped": records dropped since the previous batch. */
  count?: number;
}

export interface ListenerCounters {
  name: string;
  accepted: number;
  active: number;
  rejectedLimit: number;
  rejectedPerClient: number;
  handshakes: number;
  handshakeFailures: number;
  resumed: number;
  /** Handshakes whose SNI matched no certificate (served the default, or rejected). */
  sniUnknown: number;
  bytesIn: number;
  bytesOut: number;
  backendFailures: number;
  /** accept_proxy: connections from a sender outside trusted_proxies, closed unread. */
  proxyRefused: number;
  /** accept_proxy: malformed, unfinished or timed-out PROXY headers. */
  proxyMalformed: number;
  /**
   * ClientHellos for a known name whose backend connect waited for the end of the
   * handshake because the pool's early-connect budget (32 in flight) was spent.
   */
  earlyConnectsDeferred: number;
  /** Refused at accept (or after the PROXY header): the client network is banned. */
  rejectedBanned: number;
  /** Refused at accept: the client network is over limits.connection_rate. */
  rejectedRate: number;
  /** tls.recordLayer mailfront: connections handed over to mailfront's record layer after the handshake (the SSL freed). */
  recordLayer: number;
  /** tls.recordLayer mailfront: handshakes that stayed on OpenSSL (TLS 1.2, or a state not handed over). */
  recordLayerDeclined: number;
}

export interface NativeStats {
  workers: number;
  active: number;
  /** Milliseconds since the slowest worker last went round its loop (it wakes at least every 100 ms). */
  maxLoopAgeMs: number;
  /** Connection records dropped since start because more than maxPendingEvents waited for the JS thread. */
  eventsDropped: number;
  /** Client networks banned now, and networks the ban/rate table holds. */
  bannedNetworks: number;
  trackedNetworks: number;
  /** Certificate contexts of the snapshot served now, and how many have their SSL_CTX (built on the first handshake that names them). */
  contexts: number;
  contextsBuilt: number;
  listeners: ListenerCounters[];
}

export interface BoundListener {
  name: string;
  /** Actual bound addresses ("127.0.0.1:40123"), in the order given. */
  addresses: string[];
}

export interface NativeProxy {
  /**
   * Swap in a new snapshot; live connections keep the one they started with. Throws a NativeError:
   * MF_SNAPSHOT_FIELD (with its path), MF_TLS_CONTEXT (a pair or a TLS setting OpenSSL refused),
   * MF_TICKET_KEYS, or MF_NATIVE (the listeners changed while running).
   */
  apply(snapshot: NativeSnapshot): void;
  /** Bind (or adopt fds) and start accepting. apply() must have been called. Throws MF_LISTEN when a socket cannot be opened. */
  start(listeners: NativeListener[]): BoundListener[];
  stats(): NativeStats;
  /** Stop accepting new connections; live ones go on. */
  drain(): void;
  /** Close every connection (protocol goodbye first) and join the workers. */
  stop(): void;
}

export interface ProxyOptions {
  workers: number;
  onEvents: (events: NativeEvent[]) => void;
  /**
   * Connection records that may wait for the JS thread (default 10,000, about 7 MB);
   * beyond it they are dropped and counted (stats().eventsDropped, a "dropped" event).
   */
  maxPendingEvents?: number;
}

interface AddonModule {
  Proxy: new (options: ProxyOptions) => NativeProxy;
  opensslVersion: string;
  /** OpenSSL_version_num() of the running library (not of the headers the addon was built with). */
  opensslVersionNumber: number;
  /** Does the running OpenSSL offer this key-exchange group? */
  tlsGroupKnown(name: string): boolean;
  /** What the running OpenSSL makes of a TLS 1.2 cipher string; throws OpenSSL's refusal. */
  tlsCipherList(list: string): CipherList;
  /**
   * Parse and check certificate/key pairs (PEM blocks, leaf first) on the addon's threads; one
   * result per pair. A pair whose blocks are the previous call's is not parsed again. Key blocks
   * given as Buffers are zeroed once copied. A pair given by its files' paths is read on those
   * threads, in the plain case only: else its result is `{ unread: true }`. `append`: the second
   * call of one load (the pairs read in JS after the first's unread ones); both calls' pairs are
   * then kept for the next load.
   */
  checkCertificates(pairs: ({ certs: (string | Buffer)[]; keys: (string | Buffer)[] } | CertFiles)[], append?: boolean): CertCheck[];
  /**
   * checkCertificates without blocking the JS thread: the check runs on the addon's threads and
   * the Promise settles on the JS thread (native/cert_check_async.h). A malformed argument throws
   * at once. Two calls must not overlap: each replaces what the other remembers for the next.
   */
  checkCertificatesAsync(pairs: ({ certs: (string | Buffer)[]; keys: (string | Buffer)[] } | CertFiles)[], append?: boolean): Promise<CertCheck[]>;
  /**
   * Let's Encrypt discovery: for each `<live>/<name>` directory, which of fullchain.pem (1) and
   * privkey.pem (2) it lists, read on the addon's threads; -1 when it cannot be listed (the
   * caller lists it again with readdir for the error, or to skip a file).
   */
  lineageFiles(live: string, names: string[]): Int32Array;
  /** sd_notify(3): send "READY=1" etc. to $NOTIFY_SOCKET; false when there is none. */
  sdNotify(state: string): boolean;
  /** The PEM block rule (native/pem_files.h): "-----BEGIN X-----" (line end) to the first "-----END X-----", as byte offsets; key: a private key's label. */
  pemBlocks(buf: Buffer): { label: string; start: number; end: number; key: boolean }[];
  /** The host-name rule (native/sni.h): lowercased, no trailing dot; null when not a DNS name (or an IP literal). */
  normalizeHostName(text: string): string | null;
  /** The address rule (native/net.h): "ip:port", "[v6]:port" or an absolute unix socket path. */
  parseAddress(text: string): NativeAddress;
  /** The CIDR rule (native/proxy_parse.h): "10.0.0.0/8", "::1/128" or a bare address; null when malformed. */
  parseCidr(text: string): { family: 4 | 6; bytes: number[]; prefix: number } | null;
  /** The SNI lookup rule (native/snapshot.h match_name) on a certificate store's tables. */
  findContext(index: { exact: Record<string, number>; wildcard: Record<string, number> }, name: string): { context: number; match: 'exact' | 'wildcard' } | null;
  /** The PROXY header of mailfront's own connections to a pool (health checks, probes): v1 UNKNOWN or v2 LOCAL; null for off. */
  localProxyHeader(version: NativeBackend['proxyProtocol']): Buffer | null;
  /** Every reason a connection record can carry (native/close_reason.h); ordinary: how connections end. */
  closeReasons: readonly CloseReasonInfo[];
}

/** parseAddress: the address, or why it is refused (host and port: the texts as split, when it got that far). */
export type NativeAddress =
  | { kind: 'tcp'; host: string; port: number; family: 4 | 6 }
  | { kind: 'unix'; path: string }
  | { error: NativeAddressError; host?: string; port?: string };
export type NativeAddressError =
  | 'missing-bracket' | 'no-port-after-bracket' | 'not-ipv6' | 'no-port' | 'unbracketed-ipv6' | 'no-host'
  | 'not-ip' | 'bad-port' | 'port-range' | 'unix-too-long' | 'unix-nul';

/** One close reason of the data plane's table (native/close_reason.h). */
export interface CloseReasonInfo {
  name: string;
  /** The way connections end (logged at info), not a failure or refusal (warn). */
  ordinary: boolean;
}

/** A TLS 1.2 cipher string as OpenSSL expands it (TLS 1.3 suites are not in it). */
export interface CipherList {
  /** In OpenSSL's order. kx and auth are OpenSSL's names: "ECDHE", "DHE", "RSA", "PSK"; "ECDSA", "RSA", "NULL" (anonymous). */
  suites: { name: string; kx: string; auth: string; aead: boolean }[];
  /** The security level the string leaves at: mailfront's 2, unless it holds "@SECLEVEL=n". */
  securityLevel: number;
}

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

let addon: AddonModule | undefined;
export function loadAddon(): AddonModule {
  // MAILFRONT_ADDON: another build of the addon (scripts/sanitize.sh loads an ASan/UBSan one).
  // Otherwise node-gyp-build: a source build (build/Release) first, else the
  // prebuilt binary the package ships (prebuilds/linux-x64/).
  if (!addon) {
    const override = process.env.MAILFRONT_ADDON;
    addon = (override ? require(override) : require('node-gyp-build')(root)) as AddonModule;
  }
  return addon;
}

/** The codes the addon sets on what it throws (native/js_errors.h); anything else arrives as MF_NATIVE. */
const NATIVE_CODES: ReadonlySet<string> = new Set<ErrorCode>(['MF_SNAPSHOT_FIELD', 'MF_TLS_CONTEXT', 'MF_TICKET_KEYS', 'MF_LISTEN', 'MF_NATIVE']);

/** What the data plane threw, as a MailfrontError: its code, and for a snapshot field the field's path. */
export class NativeError extends MailfrontError {
  /** MF_SNAPSHOT_FIELD: the field, as NativeSnapshot spells it ("listeners[1].backend"). */
  readonly path?: string;
  constructor(code: ErrorCode, message: string, options: { cause?: unknown; path?: string } = {}) {
    super(code, message, { cause: options.cause });
    this.name = 'NativeError';
    if (options.path !== undefined) this.path = options.path;
  }
}

/** Converts an error thrown by the addon; anything else passes through. */
export function fromNative(err: unknown): unknown {
  if (!(err instanceof Error) || err instanceof MailfrontError) return err;
  const { code, path } = err as { code?: unknown; path?: unknown };
  return new NativeError(typeof code === 'string' && NATIVE_CODES.has(code) ? (code as ErrorCode) : 'MF_NATIVE', err.message, {
    cause: err,
    path: typeof path === 'string' ? path : undefined,
  });
}

function boundary<T>(call: () => T): T {
  try {
    return call();
  } catch (err) {
    throw fromNative(err);
  }
}

export function createProxy(workers: number, onEvents: (events: NativeEvent[]) => void, options: { maxPendingEvents?: number } = {}): NativeProxy {
  const { Proxy } = loadAddon();
  const proxy = boundary(() => new Proxy({ workers, onEvents, ...options }));
  return {
    apply: (snapshot) => boundary(() => proxy.apply(snapshot)),
    start: (listeners) => boundary(() => proxy.start(listeners)),
    stats: () => proxy.stats(),
    drain: () => proxy.drain(),
    stop: () => proxy.stop(),
  };
}
