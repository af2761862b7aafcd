// Watch certificate directories and call back once per burst of changes.
//
// For a Let's Encrypt dir (one holding live/), live/ and archive/ are watched (not renewal/,
// keys/, csr/ nor certbot's lock file, which change on every `certbot renew` run); any other
// dir is watched as is. Recursive fs.watch where the platform has it, else the dir and its
// direct subdirectories. Events are debounced (quiet period `debounceMs`), and while certbot
// runs (its `<dir>/.certbot.lock` exists; certbot removes it on exit) the callback waits, up to
// `maxWaitMs`, so a renewal of many lineages gives one callback.
import { watch, existsSync, readdirSync, statSync, type FSWatcher } from 'node:fs';
import path from 'node:path';

export interface WatchOptions {
  /** Quiet period before the callback (default 2000 ms). */
  debounceMs?: number;
  /** Longest wait after the first event while certbot's lock file exists (default 10 min). */
  maxWaitMs?: number;
  /** Watch errors (a watched dir removed, inotify limits); default: ignored. */
  onError?: (err: Error, dir: string) => void;
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** The directories to watch for one configured dir. */
export function watchTargets(dir: string): string[] {
  const live = path.join(dir, 'live');
  if (isDir(live)) return [live, path.join(dir, 'archive')].filter(isDir);
  return isDir(dir) ? [dir] : [];
}

export function watchCertificates(dirs: string[], onChange: () => void, opts: WatchOptions = {}): { close(): void } {
  const debounceMs = opts.debounceMs ?? 2000;
  const maxWaitMs = opts.maxWaitMs ?? 600_000;
  const lockFiles = dirs.map((d) => path.join(d, '.certbot.lock'));
  const watchers: FSWatcher[] = [];
  let timer: NodeJS.Timeout | undefined;
  let firstEvent = 0;
  let closed = false;

  const fire = (): void => {
    timer = undefined;
    if (closed) return;
    if (lockFiles.some((f) => existsSync(f)) && Date.now() - firstEvent < maxWaitMs) {
      timer = setTimeout(fire, debounceMs);
      return;
    }
    firstEvent = 0;
    onChange();
  };
  const schedule = (): void => {
    if (closed) return;
    if (firstEvent === 0) firstEvent = Date.now();
    if (timer) clearTimeout(timer);
    timer = setTimeout(fire, debounceMs);
  };
  const add = (target: string, recursive: boolean): boolean => {
    try {
      const w = watch(target, { recursive, persistent: false }, schedule);
      w.on('error', (err) => opts.onError?.(err, target));
      watchers.push(w);
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (recursive && code === 'ERR_FEATURE_UNAVAILABLE_ON_PLATFORM') return false;
      opts.onError?.(err as Error, target);
      return true;
    }
  };

  for (const dir of dirs) {
    const targets = watchTargets(dir);
    if (targets.length === 0) opts.onError?.(Object.assign(new Error(`cannot watch ${dir}: not a directory`), { code: 'ENOENT' }), dir);
    for (const t of targets) {
      if (add(t, true)) continue;
      add(t, false);
      for (const e of readdirSync(t, { withFileTypes: true })) if (e.isDirectory()) add(path.join(t, e.name), false);
    }
  }

  return {
    close(): void {
      closed = true;
      if (timer) clearTimeout(timer);
      for (const w of watchers) w.close();
      watchers.length = 0;
    },
  };
}
