// The agent's core does not import the simulator: only the entry point (agent/main.ts) and its
// simulator wiring (agent/main-sim.ts) reach sim-hardware/. Test files may use the simulator as a
// fixture. A plain scan of every import and export-from specifier.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const AGENT = resolve(import.meta.dirname);
const ROOT = resolve(AGENT, '..');
const ENTRY = new Set(['agent/main.ts', 'agent/main-sim.ts']);

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return e.isFile() && /\.ts$/.test(e.name) && !/\.test\.ts$/.test(e.name) ? [p] : [];
  });
}

/** every module specifier a file names: import … from, export … from, import(), require() */
export function specifiers(text: string): string[] {
  const out: string[] = [];
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\brequire\s*\(\s*)['"]([^'"]+)['"]/g;
  for (const m of text.matchAll(re)) out.push(m[1]!);
  return out;
}

describe('agent core imports', () => {
  it('finds the specifiers of every import form', () => {
    expect(specifiers(`import a from '../sim-hardware/a.js';\nimport type { B } from "../x.js";\nexport { c } from '../sim-hardware/c.js';\nconst d = await import('../d.js');\nimport '../e.js';`))
      .toEqual(['../sim-hardware/a.js', '../x.js', '../sim-hardware/c.js', '../d.js', '../e.js']);
  });

  it('no agent file other than the entry point imports sim-hardware/', () => {
    const files = sources(AGENT);
    expect(files.map((f) => relative(ROOT, f))).toContain('agent/agent.ts');
    const offenders = files
      .filter((f) => !ENTRY.has(relative(ROOT, f)))
      .flatMap((f) =>
        specifiers(readFileSync(f, 'utf8'))
          .filter((s) => s.startsWith('.') && relative(ROOT, resolve(f, '..', s)).split('/')[0] === 'sim-hardware')
          .map((s) => `${relative(ROOT, f)} imports ${s}`),
      );
    expect(offenders).toEqual([]);
  });
});
