// The command results on disk (--state-dir), so "at most once per command id" holds across an
// agent restart: a command redelivered after the restart repeats its earlier result instead of
// being applied again — which matters when a later command has changed the same devices since.
// One JSON line per result, appended before the result is sent; when the file holds twice the
// remembered number it is rewritten with the newest half (replaced whole: state-file.ts).
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CommandResult } from '../../proto/gen/hcp/v1/commands.js';
import { replaceStateFile } from '../state-file.js';

const FILE = 'command-results.jsonl';

export interface ResultJournal {
  /** the newest results found on disk, oldest first (at most `limit`) */
  readonly loaded: CommandResult[];
  /** lines that could not be read (a torn last line after a crash, say); they are dropped */
  readonly skipped: number;
  append(r: CommandResult): void;
}

export function openResultJournal(dir: string, limit: number): ResultJournal {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, FILE);
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const all: CommandResult[] = [];
  let skipped = 0;
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const r = CommandResult.fromJSON(JSON.parse(line));
      if (r.commandId) all.push(r);
      else skipped++;
    } catch {
      skipped++;
    }
  }
  let kept = all.slice(-limit);
  let lines = all.length;
  const rewrite = () => {
    replaceStateFile(dir, FILE, kept.map((r) => `${JSON.stringify(CommandResult.toJSON(r))}\n`).join(''));
    lines = kept.length;
  };
  if (skipped || lines > limit) rewrite();
  const loaded = [...kept];
  return {
    loaded,
    skipped,
    append(r) {
      appendFileSync(path, `${JSON.stringify(CommandResult.toJSON(r))}\n`);
      kept.push(r);
      lines++;
      if (lines >= 2 * limit) {
        kept = kept.slice(-limit);
        rewrite();
      }
    },
  };
}
