// Session-ticket keys shared by a fleet: one key per line, base64 of 80 bytes
// (name 16, HMAC 32, AES 32), newest first; '#' starts a comment.
// Make one with: openssl rand -base64 80 | tr -d '\n'
import { readFile } from 'node:fs/promises';
import { MailfrontError } from './errors.js';

export const TICKET_KEY_BYTES = 80;

export function parseTicketKeys(text: string, file: string): Buffer[] {
  const keys: Buffer[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) return;
    const key = Buffer.from(line, 'base64');
    if (!/^[A-Za-z0-9+/=]+$/.test(line) || key.length !== TICKET_KEY_BYTES)
      throw new MailfrontError('MF_CONFIG_INVALID', `${file}:${i + 1}: a ticket key is base64 of ${TICKET_KEY_BYTES} bytes`);
    keys.push(key);
  });
  if (keys.length === 0) throw new MailfrontError('MF_CONFIG_INVALID', `${file}: no ticket key in the file`);
  return keys;
}

export async function readTicketKeys(file: string): Promise<Buffer[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new MailfrontError('MF_CONFIG_READ', `${file}: ${(err as Error).message}`, { cause: err });
  }
  return parseTicketKeys(text, file);
}
