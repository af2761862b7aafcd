// Every error mailfront reports on purpose, with a stable code (fastify style).
// Tests and scripts match on `code`, never on the message text.

export const ErrorCodes = {
  MF_CONFIG_INVALID: 'configuration is invalid',
  MF_CONFIG_READ: 'configuration file cannot be read',
  MF_CERT_LOAD: 'a certificate or key cannot be loaded',
  MF_CERT_NONE: 'no usable certificate',
  MF_NATIVE: 'the data plane refused the request',
  MF_SNAPSHOT_FIELD: 'the data plane refused a snapshot field (missing, of the wrong type, or out of range)',
  MF_TLS_CONTEXT: 'OpenSSL refused a certificate, a key or a TLS setting',
  MF_TICKET_KEYS: 'no session-ticket key could be made',
  MF_LISTEN: 'a listener cannot be opened',
  MF_BACKEND: 'a backend cannot be reached',
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export class MailfrontError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MailfrontError';
    this.code = code;
  }
}

/** Process exit codes of the CLI, by error code (sysexits.h where one fits). */
export const exitCodes: Record<ErrorCode, number> = {
  MF_CONFIG_INVALID: 78, // EX_CONFIG
  MF_CONFIG_READ: 66, // EX_NOINPUT
  MF_CERT_LOAD: 78,
  MF_CERT_NONE: 78,
  MF_NATIVE: 70, // EX_SOFTWARE
  MF_SNAPSHOT_FIELD: 70, // TypeScript validated the config: a field native refuses is a bug of ours
  MF_TLS_CONTEXT: 78,
  MF_TICKET_KEYS: 71, // EX_OSERR: the random generator failed
  MF_LISTEN: 71, // EX_OSERR
  MF_BACKEND: 69, // EX_UNAVAILABLE
};
