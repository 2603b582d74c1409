// Files in the agent's --state-dir are replaced whole: written to a temporary file and renamed,
// so a crash mid-write leaves the previous contents, never half of them.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export function replaceStateFile(dir: string, file: string, text: string): void {
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `${file}.${process.pid}.tmp`);
  writeFileSync(tmp, text);
  renameSync(tmp, join(dir, file));
}
