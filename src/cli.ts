#!/usr/bin/env node
// mailfront's command line (the commands are in commands.ts). They are loaded
// with require(), one file at a time: Node 20's ESM loader opens a module
// graph's files all at once, and failed with EMFILE under a low LimitNOFILE=
// (32) once the graph grew past ~30 files. require(esm) is on in Node 20.19+.
import { createRequire } from 'node:module';

createRequire(import.meta.url)('./commands.js');
