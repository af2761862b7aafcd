// Session-ticket keys shared by a fleet: one key per line, base64 of 80 bytes
// (name 16, HMAC 32, AES 32), newest first; '#' starts a comment.
// Make one with: openssl rand -base64 80 | tr -d '\n'
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { MailfrontError } from './errors.js';

export const TICKET_KEY_BYTES = 80;

export function parseTicketKeys(text: string, file: string): Buffer[] {
  const keys: Buffer[] = [];
  const refuse = (message: string, key?: Buffer): never => {
    for (const k of [...keys, ...(key ? [key] : [])]) k.fill(0);
    throw new MailfrontError('MF_CONFIG_INVALID', message);
  };
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) return;
    const key = Buffer.from(line, 'base64');
    if (!/^[A-Za-z0-9+/=]+$/.test(line) || key.length !== TICKET_KEY_BYTES)
      refuse(`${file}:${i + 1}: a ticket key is base64 of ${TICKET_KEY_BYTES} bytes`, key);
    const same = keys.findIndex((k) => k.subarray(0, 16).equals(key.subarray(0, 16)));
    // Two keys with one name: only the first could ever decrypt; a copy-paste slip.
    if (same >= 0) refuse(`${file}:${i + 1}: the same key name as key ${same + 1} of the file`, key);
    keys.push(key);
  });
  if (keys.length === 0) refuse(`${file}: no ticket key in the file`);
  return keys;
}

export interface TicketKeyFile {
  /** Newest first. Handed to apply(), which copies them into the data plane and zeroes these Buffers. */
  keys: Buffer[];
  /** Set when the file is readable by every user. */
  warning?: string;
}

export async function readTicketKeys(file: string): Promise<TicketKeyFile> {
  let raw: Buffer;
  let mode: number;
  try {
    raw = await readFile(file);
    mode = (await stat(file)).mode;
  } catch (err) {
    throw new MailfrontError('MF_CONFIG_READ', `${file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const keys = parseTicketKeys(raw.toString('utf8'), file);
    // Whoever holds these keys can open every recorded session resumed under them, like a private key.
    const warning = (mode & 0o004) !== 0
      ? `${file} holds session-ticket keys and is readable by every user (mode ${(mode & 0o777).toString(8)}): chmod o-rwx`
      : undefined;
    return warning ? { keys, warning } : { keys };
  } finally {
    raw.fill(0); // the file's bytes; the keys were copied out (a JS string of the text cannot be wiped)
  }
}

/**
 * For the ready/reloaded log lines: how many keys, and an id of the newest
 * (a hash of its 16-byte name, which every ticket carries in clear anyway), so
 * that an operator can check every instance of a fleet encrypts with the same key.
 * Without a file: the keys are made in memory and rotated by the data plane.
 */
export function ticketKeyInfo(file: string | undefined, keys: readonly Buffer[]): Record<string, unknown> {
  if (!file || keys.length === 0) return { ticket_keys: 'in memory, rotated every 6 h' };
  return {
    ticket_keys: file,
    ticket_key_count: keys.length,
    ticket_key_id: createHash('sha256').update(keys[0]!.subarray(0, 16)).digest('hex').slice(0, 12),
  };
}
