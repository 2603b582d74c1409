// deploy/systemd/hcp-agent.service read as systemd would for the parts a test or a bench runs
// the agent with: the [Service] section's Environment= lines and ExecStart=. Only the forms the
// unit uses: one KEY=VALUE per Environment= line, no quoting, ${VAR} in ExecStart.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './processes.js';

export const AGENT_UNIT = join(ROOT, 'deploy/systemd/hcp-agent.service');
export const AGENT_ENV_EXAMPLE = join(ROOT, 'deploy/systemd/agent.env.example');

/** `KEY=VALUE` at its first `=` */
const keyValue = (line: string): [string, string] => {
  const at = line.indexOf('=');
  return [line.slice(0, at), line.slice(at + 1)];
};

/** `[Service]` key → its values, in order (a key may repeat) */
export function serviceSection(file = AGENT_UNIT): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let section = '';
  for (const raw of readFileSync(file, 'utf8').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) {
      section = s[1]!;
      continue;
    }
    if (section !== 'Service') continue;
    const [key, value] = keyValue(line);
    out.set(key, [...(out.get(key) ?? []), value]);
  }
  return out;
}

/** the environment the unit's Environment= lines give the agent */
export function unitEnvironment(file = AGENT_UNIT): Record<string, string> {
  return Object.fromEntries((serviceSection(file).get('Environment') ?? []).map(keyValue));
}

/** ExecStart= as argv, with ${VAR} taken from vars */
export function unitCommand(vars: Record<string, string>, file = AGENT_UNIT): string[] {
  const [exec] = serviceSection(file).get('ExecStart') ?? [];
  if (!exec) throw new Error(`${file}: no ExecStart=`);
  return exec.split(/\s+/).map((w) => w.replace(/\$\{(\w+)\}/g, (_, k: string) => {
    if (!(k in vars)) throw new Error(`${file}: ExecStart uses \${${k}}, not given`);
    return vars[k]!;
  }));
}

/** an EnvironmentFile's KEY=VALUE lines */
export function envFile(file = AGENT_ENV_EXAMPLE): Record<string, string> {
  return Object.fromEntries(readFileSync(file, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')).map(keyValue));
}
