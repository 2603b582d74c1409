// mining on|off, curtail and the command log (control-plane/http/routes/commands.ts). Mining and
// curtail state operator claims; the answer names the claim(s) and the commands the reconciler
// sent. --wait then follows the commands until each is final, showing how many are acked and done.
import { duration, int, isoTime, oneOf, required, str, UsageError } from '../args.js';
import type { Api } from '../api.js';
import type { Ctx } from '../context.js';
import { createProgress } from '../progress.js';
import { fields, json, table, when } from '../output.js';

export interface CommandView {
  id: string; site: string; type: string; state: string; actor: string; workload_id: string | null;
  params: Record<string, unknown>; created_at: string; deadline: string | null; sent_at: string | null; acked_at: string | null;
  finished_at: string | null; attempts: number; reason_code: string | null; message: string | null;
  devices: Array<{ device_id: string; state: string }> | null;
}
interface ClaimView {
  id: string; site: string; source: string; reason: string | null; actor: string; created_at: string; expires_at: string | null; devices: number | 'all';
  want: { kind: 'mining'; enabled: boolean; power_target_w: number | null } | { kind: 'site_cap'; cap_kw: number };
}

const FINAL = new Set(['succeeded', 'failed', 'expired']);
const COMMAND_STATES = ['pending', 'sent', 'acked', 'succeeded', 'failed', 'expired'] as const;
const POLL_MS = 500;
/** at most this many single-command reads per poll; more outstanding than this are read as a list */
const SINGLE_READS = 20;

export const commandRows = (cs: CommandView[]) =>
  table(['COMMAND', 'SITE', 'TYPE', 'STATE', 'ACTOR', 'CREATED', 'RESULT'], cs.map((c) => [c.id, c.site, c.type, c.state, c.actor, when(c.created_at), c.reason_code ? `${c.reason_code}: ${c.message ?? ''}` : null]));

function counts(cs: Iterable<CommandView>): string {
  const n = new Map<string, number>();
  let total = 0;
  for (const c of cs) {
    n.set(c.state, (n.get(c.state) ?? 0) + 1);
    total++;
  }
  const acked = (n.get('acked') ?? 0) + (n.get('succeeded') ?? 0) + (n.get('failed') ?? 0);
  const done = (n.get('succeeded') ?? 0) + (n.get('failed') ?? 0) + (n.get('expired') ?? 0);
  const rest = [...n].filter(([s]) => s !== 'succeeded').map(([s, k]) => `${k} ${s}`).join(', ');
  return `${done}/${total} done, ${acked}/${total} acked${n.get('succeeded') ? `, ${n.get('succeeded')} succeeded` : ''}${rest ? ` (${rest})` : ''}`;
}

/** follows the commands until every one is final or `timeoutS` passes; returns their last views */
export async function waitCommands(api: Api, initial: CommandView[], timeoutS: number, label: string): Promise<{ commands: CommandView[]; timedOut: boolean }> {
  const latest = new Map(initial.map((c) => [c.id, c]));
  const progress = createProgress();
  const until = Date.now() + timeoutS * 1000;
  const open = () => [...latest.values()].filter((c) => !FINAL.has(c.state));
  let rotate = 0;
  progress.update(`${label}: ${counts(latest.values())}`);
  try {
    while (open().length && Date.now() < until) {
      await new Promise((r) => setTimeout(r, POLL_MS));
      const pending = open();
      if (pending.length > SINGLE_READS) {
        // one read for the many (a fleet curtail is a command per site), newest first
        const { commands } = await api.get<{ commands: CommandView[] }>('/api/v1/commands', { limit: 1000 });
        for (const c of commands) if (latest.has(c.id)) latest.set(c.id, c);
      }
      // those the list did not reach, a few at a time
      const still = open();
      const batch = still.length <= SINGLE_READS ? still : Array.from({ length: SINGLE_READS }, (_, i) => still[(rotate + i) % still.length]!);
      rotate += SINGLE_READS;
      for (const c of await Promise.all(batch.map((c) => api.get<CommandView>(`/api/v1/commands/${encodeURIComponent(c.id)}`)))) latest.set(c.id, c);
      progress.update(`${label}: ${counts(latest.values())}`);
    }
  } finally {
    progress.done();
  }
  const commands = initial.map((c) => latest.get(c.id)!);
  return { commands, timedOut: commands.some((c) => !FINAL.has(c.state)) };
}

function expiryBody(ctx: Ctx) {
  const d = duration(ctx.values, 'duration');
  const u = isoTime(ctx.values, 'until');
  if (d !== undefined && u !== undefined) throw new UsageError('give --duration or --until, not both', ctx.spec);
  return { ...(d !== undefined ? { duration_s: d } : {}), ...(u ? { expires_at: u } : {}) };
}

/** prints the answer (or the waited-for commands) and says whether every command succeeded */
async function answer(ctx: Ctx, body: { claim?: ClaimView; claims?: ClaimView[]; commands: CommandView[] }, label: string): Promise<number> {
  const timeoutS = int(ctx.values, 'timeout', 1, 86_400) ?? 300;
  let commands = body.commands;
  let timedOut = false;
  if (ctx.values.wait && commands.length) ({ commands, timedOut } = await waitCommands(ctx.api, commands, timeoutS, label));
  const result = { ...body, commands };
  if (ctx.json) ctx.out(json(result));
  else {
    const claims = body.claims ?? (body.claim ? [body.claim] : []);
    for (const c of claims) ctx.out(`claim ${c.id} at ${c.site}${c.reason ? ` (${c.reason})` : ''}${c.expires_at ? `, until ${c.expires_at}` : ', until released'}\n`);
    ctx.out(commands.length ? commandRows(commands) : 'nothing to send: the devices are already so\n');
  }
  if (!ctx.values.wait) return 0;
  if (timedOut) return ctx.err(`hcp: gave up after ${timeoutS} s: ${counts(commands)}\n`), 1;
  const bad = commands.filter((c) => c.state !== 'succeeded');
  if (bad.length) return ctx.err(`hcp: ${bad.length} of ${commands.length} commands did not succeed: ${bad.map((c) => `${c.id} ${c.state}${c.reason_code ? ` (${c.reason_code})` : ''}`).join('; ')}\n`), 1;
  return 0;
}

export async function mining(ctx: Ctx): Promise<number> {
  const on = ctx.spec.words[1] === 'on';
  const site = required(ctx.values, 'site', ctx.spec);
  const devices = str(ctx.values, 'devices')?.split(',').map((s) => s.trim()).filter(Boolean);
  const target = on ? int(ctx.values, 'power-target', 1, 10_000) : undefined;
  const reason = str(ctx.values, 'reason');
  const body = { enabled: on, ...(target ? { power_target_w: target } : {}), ...(devices?.length ? { device_ids: devices } : {}), ...(reason ? { reason } : {}), ...expiryBody(ctx) };
  int(ctx.values, 'timeout', 1, 86_400);
  const r = await ctx.api.post<{ claim: ClaimView; commands: CommandView[] }>(`/api/v1/sites/${encodeURIComponent(site)}/mining`, body);
  return answer(ctx, r.body, `mining ${on ? 'on' : 'off'} at ${site}`);
}

export async function curtail(ctx: Ctx): Promise<number> {
  const sites = (ctx.values.site as string[] | undefined) ?? [];
  const all = ctx.values.all === true;
  if (!all && !sites.length) throw new UsageError('name the sites (--site S, repeatable) or --all for the whole fleet', ctx.spec);
  if (all && sites.length) throw new UsageError('give --site or --all, not both', ctx.spec);
  const reason = required(ctx.values, 'reason', ctx.spec);
  int(ctx.values, 'timeout', 1, 86_400);
  const r = await ctx.api.post<{ claims: ClaimView[]; commands: CommandView[] }>('/api/v1/curtail', { ...(all ? { all: true } : { sites }), reason, ...expiryBody(ctx) });
  return answer(ctx, r.body, `curtail ${all ? 'the fleet' : sites.join(', ')}`);
}

export async function commandsList(ctx: Ctx): Promise<number> {
  const v = ctx.values;
  const q = { site: str(v, 'site'), state: oneOf(v, 'state', COMMAND_STATES), workload_id: str(v, 'workload'), limit: int(v, 'limit', 1, 1000) };
  const r = await ctx.api.get<{ commands: CommandView[] }>('/api/v1/commands', q);
  ctx.out(ctx.json ? json(r) : commandRows(r.commands));
  return 0;
}

export async function commandsGet(ctx: Ctx): Promise<number> {
  const c = await ctx.api.get<CommandView>(`/api/v1/commands/${encodeURIComponent(ctx.positionals[0]!)}`);
  if (ctx.json) return ctx.out(json(c)), 0;
  ctx.out(fields([
    ['id', c.id], ['site', c.site], ['type', c.type], ['state', c.state], ['actor', c.actor], ['workload', c.workload_id],
    ['params', JSON.stringify(c.params)], ['created', c.created_at], ['sent', c.sent_at], ['acked', c.acked_at], ['finished', c.finished_at],
    ['deadline', c.deadline], ['attempts', c.attempts], ['reason', c.reason_code ? `${c.reason_code}: ${c.message ?? ''}` : null],
  ]));
  if (c.devices?.length) ctx.out('\n' + table(['DEVICE', 'STATE'], c.devices.map((d) => [d.device_id, d.state])));
  return 0;
}

const CLAIM_SOURCES = ['grid', 'operator', 'demand_response', 'scheduler', 'schedule', 'economics'] as const;
const wants = (c: ClaimView) => (c.want.kind === 'mining' ? `mining ${c.want.enabled ? 'on' : 'off'}${c.want.power_target_w ? ` at ${c.want.power_target_w} W` : ''}` : `cap ${c.want.cap_kw} kW`);

export async function claimsList(ctx: Ctx): Promise<number> {
  const q = { site: str(ctx.values, 'site'), source: oneOf(ctx.values, 'source', CLAIM_SOURCES) };
  const r = await ctx.api.get<{ claims: ClaimView[] }>('/api/v1/claims', q);
  if (ctx.json) return ctx.out(json(r)), 0;
  ctx.out(table(['CLAIM', 'SITE', 'SOURCE', 'WANTS', 'DEVICES', 'BY', 'SINCE', 'UNTIL', 'REASON'],
    r.claims.map((c) => [c.id, c.site, c.source, wants(c), c.devices, c.actor, when(c.created_at), when(c.expires_at) ?? 'released', c.reason])));
  return 0;
}

export async function claimsRelease(ctx: Ctx): Promise<number> {
  const r = await ctx.api.del<{ released: ClaimView; commands: string[] }>(`/api/v1/claims/${encodeURIComponent(ctx.positionals[0]!)}`, { reason: str(ctx.values, 'reason') });
  if (ctx.json) return ctx.out(json(r)), 0;
  ctx.out(`released ${r.released.id} at ${r.released.site} (${wants(r.released)}); ${r.commands.length ? `commands: ${r.commands.join(', ')}` : 'nothing to send'}\n`);
  return 0;
}
