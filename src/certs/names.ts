// DNS name rules shared by parsing, indexing and lookup.

const LABEL = '[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?';
const HOST = new RegExp(`^(?:${LABEL}\\.)*${LABEL}$`);

/** Lowercase, trailing dot removed; null when not a host name or a one-label wildcard ("*.example.org"). */
export function normalizeName(raw: string): string | null {
  let n = raw.trim().toLowerCase();
  if (n.endsWith('.')) n = n.slice(0, -1);
  if (n.length === 0 || n.length > 253) return null;
  if (n.startsWith('*.')) return HOST.test(n.slice(2)) ? n : null;
  return HOST.test(n) ? n : null;
}

/** "a.example.org" -> "example.org" (the key in the wildcard index); null for a single label. */
export function parentOf(name: string): string | null {
  const i = name.indexOf('.');
  return i > 0 && i < name.length - 1 ? name.slice(i + 1) : null;
}
