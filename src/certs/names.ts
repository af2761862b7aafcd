// DNS name patterns shared by the configuration, certificate indexing and lookup.
// The host-name rule itself is the data plane's (native/sni.h normalize_sni,
// through the normalizeHostName export): a name here is what an SNI can match.
import { loadAddon } from '../native.js';

/** Lowercase, no trailing dot; null when not a host name (an IP literal is none). */
export function normalizeHostName(raw: string): string | null {
  return loadAddon().normalizeHostName(raw);
}

/**
 * A host name or a one-label wildcard whose suffix has at least two labels
 * ("*.example.org", not "*.org"): normalized, or null. Surrounding blanks are
 * dropped (names as read from certificate fields).
 */
export function normalizeName(raw: string): string | null {
  const n = raw.trim();
  if (!n.startsWith('*.')) return normalizeHostName(n);
  const suffix = normalizeHostName(n.slice(2));
  return suffix !== null && suffix.includes('.') ? `*.${suffix}` : null;
}

/** "a.example.org" -> "example.org" (the key in the wildcard index); null for a single label. */
export function parentOf(name: string): string | null {
  const i = name.indexOf('.');
  return i > 0 && i < name.length - 1 ? name.slice(i + 1) : null;
}
