// Bundles the Electron preload to CommonJS: a sandboxed preload cannot be an ES module.
import { build } from 'esbuild';

await build({
  entryPoints: ['electron/shell/preload.ts'],
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  external: ['electron'],
  outfile: 'dist/electron/shell/preload.cjs',
  logLevel: 'warning',
});
