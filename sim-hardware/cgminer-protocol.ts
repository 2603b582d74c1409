// Request → reply for the cgminer/bmminer API (shared/reference/device-protocols.md, cgminer
// API-README): JSON requests get JSON replies, the plain-text form `cmd|param` gets the text
// form, every reply ends with a NUL byte. Pure: no I/O, the caller supplies the time.
import { API_DESCRIPTION, PRIVILEGED_COMMANDS, REPORT_COMMANDS, type ApiItem, type CommandResult } from './cgminer-commands.js';
import type { CgminerMiner, CgminerStatus } from './cgminer-status.js';

// STATUS codes used here (cgminer api.c): 14 MSG_INVCMD, 23 MSG_INVJSON, 45 MSG_ACCDENY.
export const CODE_INVALID_COMMAND = 14;
export const CODE_INVALID_JSON = 23;
export const CODE_ACCESS_DENIED = 45;
const JOIN = '+';

interface Outcome {
  severity: 'S' | 'E';
  code: number;
  msg: string;
  section?: string;
  items?: ApiItem[];
}

function run(command: string, status: () => CgminerStatus): Outcome {
  const build = REPORT_COMMANDS[command];
  if (build) {
    const r: CommandResult = build(status());
    return { severity: 'S', code: r.code, msg: r.msg, section: r.section, items: r.items };
  }
  if (PRIVILEGED_COMMANDS.has(command)) {
    return { severity: 'E', code: CODE_ACCESS_DENIED, msg: `Access denied to '${command}' command` };
  }
  return { severity: 'E', code: CODE_INVALID_COMMAND, msg: 'Invalid command' };
}

function statusBlock(o: Outcome, nowS: number) {
  return { STATUS: o.severity, When: Math.floor(nowS), Code: o.code, Msg: o.msg, Description: API_DESCRIPTION };
}

function jsonReply(o: Outcome, nowS: number): Record<string, unknown> {
  const reply: Record<string, unknown> = { STATUS: [statusBlock(o, nowS)] };
  if (o.section && o.items) reply[o.section] = o.items;
  reply.id = 1;
  return reply;
}

// cgminer's text form escapes the separators with a backslash inside values.
const esc = (v: string | number | boolean): string => String(v).replace(/[\\,|=]/g, (c) => `\\${c}`);

function textReply(o: Outcome, nowS: number): string {
  const st = statusBlock(o, nowS);
  let out = `STATUS=${st.STATUS},When=${st.When},Code=${st.Code},Msg=${esc(st.Msg)},Description=${esc(st.Description)}|`;
  for (const item of o.items ?? []) {
    const entries = Object.entries(item);
    const fields = entries.map(([k, v]) => `${k}=${esc(v)}`).join(',');
    // Items that carry their own index (ASC=0, POOL=0, STATS=0) start with it; others are
    // prefixed with the section name ("SUMMARY,Elapsed=…").
    const indexed = entries[0] !== undefined && ['ASC', 'POOL', 'STATS', 'PGA'].includes(entries[0][0]);
    out += indexed ? `${fields}|` : `${o.section},${fields}|`;
  }
  return out;
}

/** Strips the NUL some clients send and surrounding whitespace. */
function clean(raw: string): string {
  return raw.replace(/[\0\s]+$/, '').trim();
}

export function handleCgminerRequest(raw: string, miner: CgminerMiner, nowS: number): string {
  const req = clean(raw);
  let snapshot: CgminerStatus | undefined;
  const status = (): CgminerStatus => (snapshot ??= miner.cgminerStatus());

  if (!req.startsWith('{')) {
    // Plain-text form: "command|parameter". Joins are a JSON-only feature (api.c).
    const bar = req.indexOf('|');
    const command = (bar === -1 ? req : req.slice(0, bar)).trim();
    return `${textReply(run(command, status), nowS)}\0`;
  }

  let parsed: unknown;
  try {
    parsed = JSON.parse(req);
  } catch {
    parsed = undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return `${JSON.stringify(jsonReply({ severity: 'E', code: CODE_INVALID_JSON, msg: 'Invalid JSON' }, nowS))}\0`;
  }
  const command = (parsed as { command?: unknown }).command;
  if (typeof command !== 'string' || command === '') {
    return `${JSON.stringify(jsonReply({ severity: 'E', code: CODE_INVALID_COMMAND, msg: 'Invalid command' }, nowS))}\0`;
  }

  if (!command.includes(JOIN)) return `${JSON.stringify(jsonReply(run(command, status), nowS))}\0`;

  // Joined report commands: one section per command, each a one-element array. A command that
  // cannot be joined gets code 45 in its own section (API-README "joined commands").
  const joined: Record<string, unknown> = {};
  for (const part of command.split(JOIN)) {
    const name = part.trim();
    if (name === '') continue;
    // Privileged commands are not joinable → 45 (run() answers so); unknown names → 14.
    joined[name] = [jsonReply(run(name, status), nowS)];
  }
  joined.id = 1;
  return `${JSON.stringify(joined)}\0`;
}
