#!/usr/bin/env node
// Entry point of the manager's command line; the code is compiled to dist/ by `npm run build`.
import { launch } from './launch.js';

await launch('whittle', new URL('../dist/electron/cli.js', import.meta.url));
