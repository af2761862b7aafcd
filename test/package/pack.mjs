// The tarball test/package/install.test.ts installs: `npm pack` of a copy of the
// work tree as a fresh clone would be (no build/, dist/, prebuilds/; node_modules
// linked). Packing compiles the addon (prepack: scripts/prebuild.sh), a minute of
// CPU, so scripts/test.sh packs early, at low priority while vitest runs
// (`node test/package/pack.mjs`), into tmp/package/<stamp>/. The stamp is a hash
// of every file copied (path, mode, content) and of the Node that packs: the test
// computes it again and takes that tarball only if it is the one its own pack
// would make from the same tree; else (a lone `npx vitest run test/package`, a
// tree changed since) it packs itself. A pack still running is waited for.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync,
  symlinkSync, writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const OUT = path.join(ROOT, 'tmp', 'package');
// The background pack (scripts/test.sh) runs niced beside the tests and may take
// long; it is raised to normal priority once the test waits for it (raise()).
const PACK_TIMEOUT_MS = process.env.MF_PACK_TIMEOUT_MS ? Number(process.env.MF_PACK_TIMEOUT_MS) : 360_000;

// What `npm pack` in the repository would see, less what is built or fetched.
const NOT_COPIED = new Set(['.git', 'node_modules', 'build', 'prebuilds', 'dist', '.runtimes', 'bench/work', 'tmp']);
const copied = (file) => !NOT_COPIED.has(path.relative(ROOT, file));

/** A hash of what the pack reads: every copied file's path, mode and content (a link's target), and the Node. */
export function treeStamp() {
  const hash = createHash('sha256').update(`${process.version}\n`);
  const walk = (dir) => {
    for (const name of readdirSync(dir).sort()) {
      const file = path.join(dir, name);
      if (!copied(file)) continue;
      const st = lstatSync(file);
      hash.update(`${path.relative(ROOT, file)}\0${st.mode}\0`);
      if (st.isSymbolicLink()) hash.update(readlinkSync(file));
      else if (st.isDirectory()) walk(file);
      else hash.update(readFileSync(file));
      hash.update('\0');
    }
  };
  walk(ROOT);
  return hash.digest('hex').slice(0, 16);
}

/** Never rejects; a bounded time, then SIGKILL. */
function run(cmd, args, cwd, env) {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, env, timeout: PACK_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
/** The session that packs (low-priority.sh's) to normal priority: the test now waits for it. */
function raise(pid) {
  try {
    const pgid = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[2];
    execFile('bash', [path.join(ROOT, 'scripts', 'low-priority.sh'), '--raise', String(pgid)], () => {});
  } catch {} // gone meanwhile
}
const tarballIn = (dir) => (existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.tgz')).map((f) => path.join(dir, f)) : []);

/**
 * Packs the tree into tmp/package/<stamp>/ (kept), unless a tarball is there
 * already; waits for another process packing the same tree. Returns the tarball,
 * or throws with npm's output.
 */
export async function packedTarball() {
  const stamp = treeStamp();
  const done = path.join(OUT, stamp);
  const lock = `${done}.pid`;
  mkdirSync(OUT, { recursive: true });
  // The lock holds the packer's pid: made with O_EXCL, so one process packs a tree.
  let raised = 0;
  for (const deadline = Date.now() + PACK_TIMEOUT_MS; ; ) {
    const found = tarballIn(done);
    if (found.length === 1) return found[0];
    try {
      writeFileSync(lock, String(process.pid), { flag: 'wx' });
      break;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
    }
    let pid = 0;
    try {
      pid = Number(readFileSync(lock, 'utf8'));
    } catch {} // gone meanwhile: try again
    if ((pid && !alive(pid)) || Date.now() > deadline) rmSync(lock, { force: true });
    else {
      if (pid && pid !== raised) raise((raised = pid));
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  rmSync(done, { recursive: true, force: true });
  const stage = mkdtempSync(path.join(os.tmpdir(), 'mf-pack-'));
  const out = `${done}.partial`; // beside done/: renamed, not copied
  const cleanup = () => {
    rmSync(stage, { recursive: true, force: true });
    rmSync(out, { recursive: true, force: true });
    rmSync(lock, { force: true });
  };
  process.once('exit', cleanup);
  try {
    const src = path.join(stage, 'src');
    cpSync(ROOT, src, { recursive: true, filter: copied });
    symlinkSync(path.join(ROOT, 'node_modules'), path.join(src, 'node_modules'));
    rmSync(out, { recursive: true, force: true });
    mkdirSync(out);
    const pack = await run('npm', ['pack', '--pack-destination', out], src, { ...process.env, JOBS: '2' });
    if (pack.code !== 0) throw new Error(`npm pack (exit ${pack.code}):\n${pack.stdout}\n${pack.stderr}`);
    renameSync(out, done); // whole or not at all: a waiter never sees half a folder
  } finally {
    cleanup();
    process.removeListener('exit', cleanup);
  }
  const packed = tarballIn(done);
  if (packed.length !== 1) throw new Error(`npm pack left ${packed.length} tarballs in ${done}`);
  return packed[0];
}

// `node test/package/pack.mjs`: pack now (scripts/test.sh, in the background).
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.once('SIGTERM', () => process.exit(143)); // the exit handler removes the stage and the lock
  const started = Date.now();
  packedTarball().then(
    (tgz) => console.log(`== packed ${path.relative(ROOT, tgz)} in ${Math.round((Date.now() - started) / 1000)}s`),
    (err) => {
      console.error(String(err.message ?? err));
      process.exit(1);
    },
  );
}
