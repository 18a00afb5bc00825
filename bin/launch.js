// How both entry points start: their code is compiled to dist/ by `npm run build`, so a fresh clone that
// was not built yet gets one line naming the step instead of a module-not-found stack.
import { existsSync } from 'node:fs';

/** Runs the compiled module `entry` (a file: URL under dist/) as the program `name`; exits 1 when it is not built. */
export async function launch(name, entry) {
  if (!existsSync(entry)) {
    console.error(`${name}: not built yet; run \`npm run setup\` (or \`npm run build\`) first`);
    process.exit(1);
  }
  await import(entry.href);
}
