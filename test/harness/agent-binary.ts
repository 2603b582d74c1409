// dist/hcp-agent, the single-executable agent (scripts/build-agent.ts), for the tests that run
// it as a site would. Built once per test run by globalSetup when it is older than what goes
// into it; the build renames into place, so a concurrent build never leaves half a file.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './processes.js';

export const AGENT_BINARY = join(ROOT, 'dist/hcp-agent');
/** the bundle inside it, kept beside it by the build: the same code under a plain node */
export const AGENT_BUNDLE = join(ROOT, 'dist/hcp-agent.cjs');
/** what goes into the binary: its sources, the build itself, the locked dependencies */
const INPUTS = ['agent', 'sim-hardware', 'proto', 'scripts/build-agent.ts', 'package-lock.json'];

function newestMtime(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const e of readdirSync(path)) {
    if (e === 'node_modules') continue;
    newest = Math.max(newest, newestMtime(join(path, e)));
  }
  return newest;
}

export function agentBinaryIsCurrent(): boolean {
  const newest = Math.max(...INPUTS.map((p) => newestMtime(join(ROOT, p))));
  return existsSync(AGENT_BINARY) && existsSync(AGENT_BUNDLE) && statSync(AGENT_BINARY).mtimeMs >= newest;
}

export function ensureAgentBinary(): void {
  if (agentBinaryIsCurrent()) return;
  execFileSync(process.execPath, ['--import', 'tsx', 'scripts/build-agent.ts'], { cwd: ROOT, stdio: 'pipe', timeout: 180_000 });
}
