// File-system error messages that tell the administrator what to do. Never include file contents.
import os from 'node:os';

function serviceUser(): string {
  let name = '';
  try {
    name = os.userInfo().username;
  } catch {
    /* no passwd entry */
  }
  const uid = process.getuid?.();
  return name ? `${name} (uid ${uid})` : `uid ${uid}`;
}

/** `what` names the kind of file ("private key", "certificate", "PEM directory"). */
export function describeFsError(err: unknown, file: string, what: string, resolved?: string): string {
  const e = err as NodeJS.ErrnoException;
  const where = resolved && resolved !== file ? `${file} (-> ${resolved})` : file;
  switch (e?.code) {
    case 'EACCES':
    case 'EPERM':
      return (
        `cannot read ${what} ${where}: permission denied (${e.code}). The service user ${serviceUser()} needs read access ` +
        `to the file and search (x) access to every directory above it. certbot creates live/ and archive/ as root-only (0700) ` +
        `and privkey.pem as 0600: give them a group the service is in, e.g. chgrp mailfront + chmod 0750 on live/ and archive/, ` +
        `chgrp mailfront + chmod 0640 on archive/<lineage>/privkey*.pem (certbot keeps group and mode across renewals). ` +
        `See docs/certificates.md.`
      );
    case 'ENOENT':
      return `${what} ${where} does not exist (or is a symlink to a missing file)`;
    case 'ENOTDIR':
      return `${what} ${where}: a path component is not a directory`;
    case 'EISDIR':
      return `${what} ${where} is a directory, not a file`;
    case 'ELOOP':
      return `${what} ${where}: too many levels of symlinks`;
    default:
      return `cannot read ${what} ${where}: ${e?.code ?? 'error'}${e?.message ? ` (${firstLine(e.message)})` : ''}`;
  }
}

function firstLine(s: string): string {
  return (s.split('\n')[0] ?? '').slice(0, 200);
}
