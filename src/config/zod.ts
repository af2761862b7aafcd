// zod, loaded with require(). Its ESM build is ~100 files (every locale of its
// error messages) and Node's ESM loader opens a module graph's files all at
// once: mailfront then could not start with fewer than ~100 open files (a low
// LimitNOFILE=). The CommonJS build is read one file after the other.
import { createRequire } from 'node:module';
import type * as Zod from 'zod';

export type { Zod };
export const z: typeof Zod.z = (createRequire(import.meta.url)('zod') as typeof Zod).z;
