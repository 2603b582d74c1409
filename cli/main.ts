// hcp: the command-line client of the control plane's REST API. Wiring only: parse argv, load
// the config, run the command, map what went wrong to an exit code.
//   0 ok · 1 the API refused or could not be reached (its message and reason are printed)
//   2 a bad flag, command or config file (the usage is printed) · 130 interrupted
import { ApiError, createApi, NetworkError } from './api.js';
import { parse, UsageError } from './args.js';
import { loadConfig } from './config.js';
import type { Run } from './context.js';
import { claimsList, claimsRelease, commandsGet, commandsList, curtail, mining } from './commands/control.js';
import { devices, sites, status } from './commands/fleet.js';
import * as keys from './commands/keys.js';
import { top } from './commands/top.js';
import * as workloads from './commands/workloads.js';
import { usage, type CommandSpec } from './spec.js';

const RUN: Record<string, Run> = {
  status, sites, devices,
  'mining on': mining, 'mining off': mining, curtail,
  'workloads submit': workloads.submit, 'workloads list': workloads.list, 'workloads get': workloads.show,
  'workloads cancel': workloads.cancel, 'workloads watch': workloads.watch,
  'commands list': commandsList, 'commands get': commandsGet,
  'claims list': claimsList, 'claims release': claimsRelease,
  'keys list': keys.list, 'keys create': keys.create, 'keys revoke': keys.revoke,
  top,
};

export async function main(argv: string[]): Promise<number> {
  const out = (s: string) => void process.stdout.write(s);
  const err = (s: string) => void process.stderr.write(s);
  let keySource: string | null = null;
  let spec: CommandSpec | undefined;
  try {
    const p = parse(argv);
    if (p.kind === 'run') spec = p.spec;
    if (p.kind === 'help') return out(usage(p.spec)), 0;
    const cfg = loadConfig({ url: p.values.url as string | undefined, config: p.values.config as string | undefined });
    for (const w of cfg.warnings) err(`hcp: warning: ${w}\n`);
    keySource = cfg.keySource;
    const run = RUN[p.spec.words.join(' ')]!;
    return await run({ api: createApi({ url: cfg.url, key: cfg.key }), spec: p.spec, values: p.values, positionals: p.positionals, json: p.values.json === true, out, err });
  } catch (e) {
    if (e instanceof UsageError) {
      err(`hcp: ${e.message}\n\n${usage(e.spec ?? spec)}`);
      return 2;
    }
    if (e instanceof ApiError) {
      err(`hcp: ${e.message} (HTTP ${e.status}, ${e.code}/${e.reason})\n`);
      if (e.reason === 'missing_key') err('hcp: no API key: set HCP_API_KEY, or put {"url": …, "key": …} in ~/.config/hcp/config.json (mode 600)\n');
      else if (e.reason === 'bad_key') err(`hcp: the key from ${keySource} was refused\n`);
      return 1;
    }
    if (e instanceof NetworkError) {
      err(`hcp: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
