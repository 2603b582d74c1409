// status, sites, devices: GET /api/v1/status, /sites, /devices (control-plane/http/routes/fleet.ts).
import { int, oneOf, str, type Values } from '../args.js';
import type { Api, Query } from '../api.js';
import type { Ctx } from '../context.js';
import { fields, json, kw, round, table, when, type Cell } from '../output.js';

export interface SiteView {
  id: string; name: string | null; region: string; power_capacity_kw: number | null; online: boolean; last_seen: string | null;
  gpus: number; asics: number; gpus_online: number; asics_online: number; gpus_busy: number; asics_mining: number;
  hashrate_ths: number; power_w: number; gpu_utilization_pct: number | null;
}
export interface StatusView {
  sites: SiteView[];
  fleet: { sites_online: number; sites_total: number; devices_online: number; devices_total: number; hashrate_ths: number; power_w: number; gpu_utilization_pct: number | null };
  replica?: { id: string; leader: boolean };
}
interface DeviceView {
  id: string; site: string; kind: 'gpu' | 'asic'; model: string; online: boolean; last_seen: string | null; rated_power_w: number;
  latest: null | {
    ts: string; power_w: number; state?: string; workload_id?: string | null; utilization_pct?: number; temperature_c?: number;
    mining_state?: string; hashrate_ths?: number; board_temperatures_c?: number[]; power_target_w?: number | null;
  };
}

export const siteRow = (s: SiteView): Cell[] => [
  s.id, s.region, s.online, kw(s.power_w), s.power_capacity_kw, round(s.hashrate_ths, 0), `${s.asics_mining}/${s.asics}`,
  `${s.gpus_busy}/${s.gpus}`, s.gpu_utilization_pct === null ? null : `${round(s.gpu_utilization_pct, 0)}%`,
];
export const SITE_HEADERS = ['SITE', 'REGION', 'ONLINE', 'POWER_KW', 'CAP_KW', 'HASH_THS', 'ASICS_MINING', 'GPUS_BUSY', 'GPU_UTIL'];

export async function status(ctx: Ctx): Promise<number> {
  const s = await ctx.api.get<StatusView>('/api/v1/status');
  if (ctx.json) return ctx.out(json(s)), 0;
  const f = s.fleet;
  ctx.out(fields([
    ['sites online', `${f.sites_online}/${f.sites_total}`],
    ['devices online', `${f.devices_online}/${f.devices_total}`],
    ['power', `${kw(f.power_w)} kW`],
    ['hashrate', `${round(f.hashrate_ths, 0)} TH/s`],
    ['GPU utilization', f.gpu_utilization_pct === null ? null : `${round(f.gpu_utilization_pct, 0)}%`],
  ]));
  ctx.out('\n' + table(SITE_HEADERS, s.sites.map(siteRow)));
  return 0;
}

/**
 * One page of a keyset-paged list (control-plane/http/paging.ts), or with --all every page,
 * joined into one answer of the same shape (next_cursor null).
 */
async function paged<T>(ctx: Ctx, path: string, field: string, query: Query): Promise<{ items: T[]; body: Record<string, unknown> }> {
  const v = ctx.values;
  const limit = int(v, 'limit', 1, 10_000);
  let cursor = str(v, 'cursor');
  let body: Record<string, unknown>;
  const items: T[] = [];
  for (;;) {
    body = await ctx.api.get<Record<string, unknown>>(path, { ...query, limit, cursor });
    items.push(...((body[field] as T[]) ?? []));
    cursor = (body.next_cursor as string | null) ?? undefined;
    if (!v.all || !cursor) break;
  }
  if (v.all) body = { ...body, [field]: items, next_cursor: null };
  return { items, body };
}

/** on stderr: how to ask for the next page, with the same filters */
function morePages(ctx: Ctx, body: Record<string, unknown>, shown: number): void {
  if (!body.next_cursor) return;
  const same = ['site', 'kind', 'online', 'limit'].filter((k) => typeof ctx.values[k] === 'string').map((k) => ` --${k} ${ctx.values[k] as string}`).join('');
  ctx.err(`${shown} of ${body.count ?? '?'}; next page: hcp ${ctx.spec.words.join(' ')}${same} --cursor ${body.next_cursor as string} (or --all)\n`);
}

export async function sites(ctx: Ctx): Promise<number> {
  const [id] = ctx.positionals;
  if (id) {
    const s = await ctx.api.get<SiteView & { devices: DeviceView[] }>(`/api/v1/sites/${encodeURIComponent(id)}`);
    if (ctx.json) return ctx.out(json(s)), 0;
    ctx.out(table(SITE_HEADERS, [siteRow(s)]) + '\n' + deviceTable(s.devices));
    return 0;
  }
  const { items, body } = await paged<SiteView>(ctx, '/api/v1/sites', 'sites', {});
  if (ctx.json) return ctx.out(json(body)), 0;
  ctx.out(table(SITE_HEADERS, items.map(siteRow)));
  morePages(ctx, body, items.length);
  return 0;
}

function deviceTable(devices: DeviceView[]): string {
  return table(
    ['DEVICE', 'SITE', 'KIND', 'MODEL', 'ONLINE', 'STATE', 'POWER_W', 'HASH_THS', 'UTIL', 'TEMP_C', 'WORKLOAD', 'SEEN'],
    devices.map((d) => {
      const l = d.latest;
      const temp = l ? (l.temperature_c ?? (l.board_temperatures_c?.length ? Math.max(...l.board_temperatures_c) : null)) : null;
      return [
        d.id, d.site, d.kind, d.model, d.online, l ? (l.state ?? l.mining_state) : null, l ? round(l.power_w, 0) : null,
        d.kind === 'asic' && l ? round(l.hashrate_ths, 1) : null, d.kind === 'gpu' && l ? `${round(l.utilization_pct, 0)}%` : null,
        round(temp, 0), l?.workload_id ?? null, when(d.last_seen),
      ];
    }),
  );
}

export function deviceQuery(v: Values): Query {
  return { site: str(v, 'site'), kind: oneOf(v, 'kind', ['gpu', 'asic'] as const), online: oneOf(v, 'online', ['true', 'false'] as const) };
}

export async function devices(ctx: Ctx): Promise<number> {
  const [id] = ctx.positionals;
  if (id) {
    const d = await ctx.api.get<DeviceView>(`/api/v1/devices/${encodeURIComponent(id)}`);
    if (ctx.json) return ctx.out(json(d)), 0;
    ctx.out(deviceTable([d]));
    if (d.latest) ctx.out('\n' + fields(Object.entries(d.latest).map(([k, x]) => [k, Array.isArray(x) ? x.join(' ') : (x as Cell)])));
    return 0;
  }
  const { items, body } = await paged<DeviceView>(ctx, '/api/v1/devices', 'devices', deviceQuery(ctx.values));
  if (ctx.json) return ctx.out(json(body)), 0;
  ctx.out(deviceTable(items));
  morePages(ctx, body, items.length);
  return 0;
}


