// Builds the renderer into dist/renderer/: app.js (+ map) bundled by esbuild from renderer/src/main.tsx,
// next to copies of index.html and styles.css. Type checking is `tsc -p renderer/tsconfig.json`, not this.
// Exits non-zero on any error. Paths are resolved from this file, so it runs from any directory.
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'renderer');
const out = join(root, 'dist', 'renderer');

/** Files served as they are, next to the bundle. */
const STATIC_FILES = ['index.html', 'styles.css'];

try {
  // Start clean, so a file removed from renderer/ is not served from an old build.
  await rm(out, { recursive: true, force: true });
  await mkdir(out, { recursive: true });
  const result = await build({
    absWorkingDir: root,
    entryPoints: [join(source, 'src', 'main.tsx')],
    outfile: join(out, 'app.js'),
    tsconfig: join(source, 'tsconfig.json'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    minify: true,
    sourcemap: true,
    legalComments: 'linked',
    logLevel: 'warning',
    metafile: true,
  });
  if (result.warnings.length > 0) {
    throw new Error(
      `esbuild reported ${result.warnings.length} warning(s) above; fix them, the build treats them as errors`,
    );
  }
  await Promise.all(STATIC_FILES.map((name) => copyFile(join(source, name), join(out, name))));
  const bytes = result.metafile.outputs['dist/renderer/app.js']?.bytes ?? 0;
  console.log(
    `renderer built: dist/renderer/ (app.js ${(bytes / 1024).toFixed(1)} KiB, ${STATIC_FILES.join(', ')})`,
  );
} catch (error) {
  // esbuild has already printed its own errors with file and line; add what failed.
  console.error(`build-renderer: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
