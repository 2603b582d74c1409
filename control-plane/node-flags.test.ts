import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CONTROL_PLANE_NODE_FLAGS } from './node-flags.js';

describe('the control plane node flags', () => {
  it("are in package.json's control-plane script too (the Dockerfile's command), ahead of the script", () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };
    const words = pkg.scripts['control-plane']!.split(/\s+/);
    const at = words.indexOf('control-plane/main.ts');
    expect(at).toBeGreaterThan(0);
    for (const f of CONTROL_PLANE_NODE_FLAGS) expect(words.slice(0, at)).toContain(f);
  });
});
