// Every command's flags and help text, declared once: the parser (args.ts) checks argv against
// them with util.parseArgs (strict), and the usage text is made from them.
export interface OptSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  /** placeholder in the usage text */
  value?: string;
  help: string;
}

export interface CommandSpec {
  /** the command words: ['status'] or ['workloads', 'submit'] */
  words: string[];
  /** positional arguments as the usage shows them, e.g. '[ID]' */
  args: string;
  minArgs: number;
  maxArgs: number;
  summary: string;
  options: Record<string, OptSpec>;
}

export const GLOBAL_OPTIONS: Record<string, OptSpec> = {
  json: { type: 'boolean', help: "print the API's JSON instead of tables" },
  url: { type: 'string', value: 'URL', help: 'the control plane (default $HCP_URL, the config file, http://127.0.0.1:8080)' },
  config: { type: 'string', value: 'FILE', help: 'config file (default ~/.config/hcp/config.json)' },
  help: { type: 'boolean', short: 'h', help: 'show help' },
};

const paging = {
  limit: { type: 'string', value: 'N', help: 'page size' },
  cursor: { type: 'string', value: 'CURSOR', help: 'the next_cursor of an earlier page' },
  all: { type: 'boolean', help: 'follow next_cursor to the last page' },
} satisfies Record<string, OptSpec>;

const waiting = {
  wait: { type: 'boolean', help: 'show progress until every command is done' },
  timeout: { type: 'string', value: 'SECONDS', help: 'give up waiting after this long (default 300)' },
} satisfies Record<string, OptSpec>;

const expiry = {
  duration: { type: 'string', value: 'DUR', help: 'the claim lapses after this long: 90s, 30m, 4h, 2d (default: until released)' },
  until: { type: 'string', value: 'ISO', help: 'the claim lapses at this time' },
} satisfies Record<string, OptSpec>;

export const COMMANDS: CommandSpec[] = [
  { words: ['status'], args: '', minArgs: 0, maxArgs: 0, summary: 'fleet totals and every site', options: {} },
  { words: ['sites'], args: '[ID]', minArgs: 0, maxArgs: 1, summary: 'the sites, or one site with its devices', options: { ...paging } },
  {
    words: ['devices'], args: '[ID]', minArgs: 0, maxArgs: 1, summary: 'devices with their latest sample, or one device',
    options: {
      site: { type: 'string', value: 'SITE', help: 'only this site' },
      kind: { type: 'string', value: 'gpu|asic', help: 'only GPUs or only ASICs' },
      online: { type: 'string', value: 'true|false', help: 'only online (or offline) devices' },
      ...paging,
    },
  },
  ...(['on', 'off'] as const).map((w): CommandSpec => ({
    words: ['mining', w], args: '', minArgs: 0, maxArgs: 0,
    summary: w === 'on' ? "state an operator claim: the site's ASICs mine" : "state an operator claim: the site's ASICs sleep",
    options: {
      site: { type: 'string', value: 'SITE', help: 'the site (required)' },
      devices: { type: 'string', value: 'ID,…', help: 'only these ASICs (comma-separated)' },
      ...(w === 'on' ? { 'power-target': { type: 'string', value: 'W', help: 'watts per ASIC' } } : {}),
      reason: { type: 'string', value: 'TEXT', help: 'why, for the audit log' },
      ...expiry,
      ...waiting,
    } as Record<string, OptSpec>,
  })),
  {
    words: ['curtail'], args: '', minArgs: 0, maxArgs: 0, summary: 'curtail every ASIC of the named sites, or of the whole fleet',
    options: {
      site: { type: 'string', multiple: true, value: 'SITE', help: 'a site to curtail (repeat for more)' },
      all: { type: 'boolean', help: 'the whole fleet' },
      reason: { type: 'string', value: 'TEXT', help: 'why (required)' },
      ...expiry,
      ...waiting,
    },
  },
  {
    words: ['workloads', 'submit'], args: '', minArgs: 0, maxArgs: 0, summary: "submit a workload to the scheduler's queue",
    options: {
      gpus: { type: 'string', value: 'N', help: 'how many GPUs, all at one site (required)' },
      type: { type: 'string', value: 'TYPE', help: 'ai_inference_realtime | ai_inference_batch | ai_training (default ai_inference_batch)' },
      priority: { type: 'string', value: '1-10', help: '1 is highest (default 5)' },
      'gpu-type': { type: 'string', value: 'TYPE', help: 'GPU model (default h100)' },
      customer: { type: 'string', value: 'ID', help: "the customer (a customer key's own when left out)" },
      site: { type: 'string', value: 'SITE', help: 'pin it to this site' },
      duration: { type: 'string', value: 'DUR', help: 'how long it runs: 90s, 30m, 4h (default until cancelled)' },
      'min-memory-mib': { type: 'string', value: 'MIB', help: 'only GPUs with at least this much memory' },
      'idempotency-key': { type: 'string', value: 'KEY', help: 'a repeated submit with this key returns the first workload' },
      wait: { type: 'boolean', help: 'show progress (queue position, then placement) until it runs' },
      timeout: { type: 'string', value: 'SECONDS', help: 'give up waiting after this long (default 300)' },
    },
  },
  {
    words: ['workloads', 'list'], args: '', minArgs: 0, maxArgs: 0, summary: 'workloads, newest first',
    options: {
      state: { type: 'string', value: 'STATE', help: 'pending | scheduled | running | preempted | completed | failed | cancelled' },
      customer: { type: 'string', value: 'ID', help: 'only this customer' },
      ...paging,
    },
  },
  { words: ['workloads', 'get'], args: 'ID', minArgs: 1, maxArgs: 1, summary: 'a workload with its placement, history and commands', options: {} },
  { words: ['workloads', 'cancel'], args: 'ID', minArgs: 1, maxArgs: 1, summary: 'cancel a workload (dequeued, or its GPUs released)', options: {} },
  {
    words: ['workloads', 'watch'], args: 'ID', minArgs: 1, maxArgs: 1, summary: "follow a workload's history until it is completed, failed or cancelled",
    options: { interval: { type: 'string', value: 'MS', help: 'poll interval (default 1000)' } },
  },
  {
    words: ['commands', 'list'], args: '', minArgs: 0, maxArgs: 0, summary: 'the command log, newest first',
    options: {
      site: { type: 'string', value: 'SITE', help: 'only this site' },
      state: { type: 'string', value: 'STATE', help: 'pending | sent | acked | succeeded | failed | expired' },
      workload: { type: 'string', value: 'ID', help: 'only commands of this workload' },
      limit: { type: 'string', value: 'N', help: 'how many (default 100, at most 1000)' },
    },
  },
  { words: ['commands', 'get'], args: 'ID', minArgs: 1, maxArgs: 1, summary: 'one command with its devices', options: {} },
  {
    words: ['claims', 'list'], args: '', minArgs: 0, maxArgs: 0, summary: 'live claims on the sites (what mining and curtail state), oldest first',
    options: {
      site: { type: 'string', value: 'SITE', help: 'only this site' },
      source: { type: 'string', value: 'SOURCE', help: 'grid | operator | demand_response | scheduler | schedule | economics' },
    },
  },
  {
    words: ['claims', 'release'], args: 'ID', minArgs: 1, maxArgs: 1, summary: "release an operator's claim: control passes to the next claim down",
    options: { reason: { type: 'string', value: 'TEXT', help: 'why, for the audit log' } },
  },
  {
    words: ['keys', 'list'], args: '', minArgs: 0, maxArgs: 0, summary: 'API keys, never their secrets (admins)',
    options: { all: { type: 'boolean', help: 'revoked keys too' } },
  },
  {
    words: ['keys', 'create'], args: '', minArgs: 0, maxArgs: 0, summary: 'make a key; its secret is printed this once (admins)',
    options: {
      role: { type: 'string', value: 'ROLE', help: 'admin | operator | customer | viewer | agent | feed (required)' },
      name: { type: 'string', value: 'NAME', help: 'a name for the audit log' },
      customer: { type: 'string', value: 'ID', help: 'the customer a customer key acts for' },
      site: { type: 'string', value: 'SITE', help: 'the site an agent key belongs to' },
    },
  },
  {
    words: ['keys', 'revoke'], args: 'ID', minArgs: 1, maxArgs: 1, summary: 'revoke a key: it stops working within a second (admins)',
    options: { reason: { type: 'string', value: 'TEXT', help: 'why' } },
  },
  {
    words: ['top'], args: '', minArgs: 0, maxArgs: 0, summary: 'a live view of the fleet (q or Ctrl-C quits)',
    options: {
      interval: { type: 'string', value: 'MS', help: 'redraw interval (default 1000)' },
      once: { type: 'boolean', help: 'print one frame and exit (the default when stdout is not a terminal)' },
    },
  },
];

/** `commands`, `keys`, `workloads` and `claims` alone mean their list */
export const DEFAULT_SUB: Record<string, string> = { commands: 'list', keys: 'list', workloads: 'list', claims: 'list' };

function optLines(options: Record<string, OptSpec>): string[] {
  return Object.entries(options).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : ''}--${name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`;
    return `  ${flag.padEnd(28)} ${o.help}${o.multiple ? ' (repeatable)' : ''}`;
  });
}

export function usage(spec?: CommandSpec): string {
  if (spec) {
    return [
      `usage: hcp ${spec.words.join(' ')}${spec.args ? ` ${spec.args}` : ''} [options]`,
      '',
      `${spec.summary}.`,
      ...(Object.keys(spec.options).length ? ['', 'options:', ...optLines(spec.options)] : []),
      '',
      'global options:',
      ...optLines(GLOBAL_OPTIONS),
      '',
    ].join('\n');
  }
  const rows = COMMANDS.map((c) => `  ${`${c.words.join(' ')}${c.args ? ` ${c.args}` : ''}`.padEnd(24)} ${c.summary}`);
  return [
    'usage: hcp <command> [options]',
    '',
    'commands:',
    ...rows,
    '',
    'global options:',
    ...optLines(GLOBAL_OPTIONS),
    '',
    'The key comes from $HCP_API_KEY or the config file; the URL from --url, $HCP_URL or the config file.',
    'Exit codes: 0 ok, 1 an API or network error, 2 a bad flag or command. `hcp <command> --help` for its options.',
    '',
  ].join('\n');
}
