#!/usr/bin/env node
// Entry point of the manager's command line; the code is compiled to dist/ by `npm run build`.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/electron/cli.js', import.meta.url);
if (!existsSync(entry)) {
  console.error('whittle: not built yet; run `npm run setup` (or `npm run build`) first');
  process.exit(1);
}
await import(entry.href);
