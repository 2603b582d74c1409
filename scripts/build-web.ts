// Builds the web console (web/ → web/dist, Vite) when web/dist is missing or older than any of
// web/'s sources, so `npm start` and `npm run control-plane` serve it with no extra step.
// `--force` builds anyway. Run as a script or imported (ensureWebBuilt).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
export const WEB_DIR = join(root, 'web');
export const WEB_DIST = join(WEB_DIR, 'dist');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'dist' || e.name === 'node_modules' || e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

/** true when web/dist/index.html is missing or older than a source */
export function webIsStale(): boolean {
  const index = join(WEB_DIST, 'index.html');
  if (!existsSync(index)) return true;
  const sources = Math.max(newestMtime(WEB_DIR), statSync(join(root, 'package-lock.json')).mtimeMs);
  return statSync(index).mtimeMs < sources;
}

export async function ensureWebBuilt(o: { force?: boolean; log?: (msg: string) => void } = {}): Promise<boolean> {
  if (!o.force && !webIsStale()) return false;
  const t0 = Date.now();
  o.log?.('HCP: building the web console (web/ → web/dist)…');
  const { build } = await import('vite');
  await build({ configFile: join(WEB_DIR, 'vite.config.ts'), root: WEB_DIR, logLevel: 'warn' });
  o.log?.(`HCP: web console built in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return true;
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  try {
    await ensureWebBuilt({ force: process.argv.includes('--force'), log: (m) => console.log(m) });
  } catch (err) {
    console.error(`HCP: the web console did not build: ${(err as Error).message}`);
    process.exit(1);
  }
}
