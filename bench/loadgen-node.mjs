// bench/loadgen on the OpenSSL inside the node that runs this script (see loadgen-napi.c):
//   $(bash scripts/node-runtime.sh 24)/bin/node bench/loadgen-node.mjs --port P --mode full --groups X25519MLKEM768 ...
// Same options, same JSON lines on stdout, same "go" line on stdin with --sync, same exit status
// as bench/work/bin/loadgen. The addon: bench/work/bin/loadgen-nodeMAJOR.node (MAJOR of this node).
// Do not touch process.stdin/stdout here: the C code reads and writes fds 0 and 1 itself.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const major = process.versions.node.split('.')[0];
const addon = path.join(path.dirname(fileURLToPath(import.meta.url)), 'work', 'bin', `loadgen-node${major}.node`);
const { run } = createRequire(import.meta.url)(addon);
process.exitCode = run([`loadgen-node${major}`, ...process.argv.slice(2)]);
