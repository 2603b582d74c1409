// The command journal in the state dir, so a command is applied at most once per command id even
// across a restart or a power loss:
// - before a command is applied, an "applying" line with its id is appended and fsynced;
// - after, its result is appended and fsynced, before the result is sent.
// On open, a command found "applying" with no result was cut off mid-apply (a crash, a power
// loss): it is NOT applied again; the handler answers it with an unknown-outcome failure
// (agent/commands/handler.ts), so the control plane knows to look at the devices. A result found
// is repeated to a redelivery instead of applying again — which matters when a later command has
// changed the same devices since.
// One JSON line each; when the file holds twice the remembered number of results it is rewritten
// with the newest half (replaced whole and fsynced).
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { CommandResult } from '../../proto/gen/hcp/v1/commands.js';

const FILE = 'command-results.jsonl';

/** a command that was being applied when the agent stopped */
export interface Unfinished {
  commandId: string;
  type: string;
  atMs: number;
}

export interface ResultJournal {
  /** the newest results found on disk, oldest first (at most `limit`) */
  readonly loaded: CommandResult[];
  /** commands journaled as applying whose result never made it to disk */
  readonly unfinished: Unfinished[];
  /** lines that could not be read (a torn last line after a crash, say); they are dropped */
  readonly skipped: number;
  /** journals (and fsyncs) that a command is about to be applied; throws when it cannot */
  applying(u: Unfinished): void;
  /** journals (and fsyncs) a command's result */
  append(r: CommandResult): void;
  close(): void;
}

type Line = { applying: Unfinished } | { result: CommandResult };

function parse(line: string): Line | null {
  try {
    const j = JSON.parse(line) as Record<string, unknown>;
    if (j && typeof j === 'object' && 'applying' in j) {
      const a = j.applying as Partial<Unfinished>;
      if (typeof a?.commandId !== 'string' || !a.commandId) return null;
      return { applying: { commandId: a.commandId, type: String(a.type ?? ''), atMs: Number(a.atMs ?? 0) } };
    }
    const r = CommandResult.fromJSON(j);
    return r.commandId ? { result: r } : null;
  } catch {
    return null;
  }
}

const resultLine = (r: CommandResult) => `${JSON.stringify(CommandResult.toJSON(r))}\n`;
const applyingLine = (u: Unfinished) => `${JSON.stringify({ applying: u })}\n`;

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
  const open = new Map<string, Unfinished>();
  let skipped = 0;
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const l = parse(line);
    if (!l) skipped++;
    else if ('applying' in l) open.set(l.applying.commandId, l.applying);
    else {
      all.push(l.result);
      open.delete(l.result.commandId);
    }
  }
  let kept = all.slice(-limit);
  let lines = all.length + open.size;
  let fd = -1;
  const rewrite = () => {
    if (fd >= 0) closeSync(fd);
    const tmp = join(dir, `${FILE}.${process.pid}.tmp`);
    writeFileSync(tmp, [...kept.map(resultLine), ...[...open.values()].map(applyingLine)].join(''));
    const t = openSync(tmp, 'r+');
    try {
      fsyncSync(t);
    } finally {
      closeSync(t);
    }
    renameSync(tmp, path);
    const d = openSync(dir, 'r');
    try {
      fsyncSync(d);
    } finally {
      closeSync(d);
    }
    lines = kept.length + open.size;
    fd = openSync(path, 'a');
  };
  // a line cut short without its newline would run into the next append: rewritten first
  if (skipped || all.length > limit || (text && !text.endsWith('\n'))) rewrite();
  else fd = openSync(path, 'a');
  const loaded = [...kept];
  const unfinished = [...open.values()];
  const write = (s: string) => {
    writeSync(fd, s);
    fsyncSync(fd);
    lines++;
  };
  return {
    loaded,
    unfinished,
    skipped,
    applying(u) {
      open.set(u.commandId, u);
      write(applyingLine(u));
    },
    append(r) {
      write(resultLine(r));
      open.delete(r.commandId);
      kept.push(r);
      if (lines >= 2 * limit) {
        kept = kept.slice(-limit);
        rewrite();
      }
    },
    close() {
      if (fd >= 0) closeSync(fd);
      fd = -1;
    },
  };
}
