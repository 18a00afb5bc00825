#!/usr/bin/env node
// Entry point of the on-device agent; the code is compiled to dist/ by `npm run build`.
import { launch } from './launch.js';

await launch('whittle-agent', new URL('../dist/agent/cli.js', import.meta.url));
