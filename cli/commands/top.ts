// hcp top: the fleet, redrawn every second in the terminal's alternate screen. Each site's power
// against its cap, hashrate, GPUs busy and the economic engine's current decision, from
// GET /api/v1/status and GET /api/v1/economics. q or Ctrl-C quits and gives the terminal back
// as it was (main screen, cursor, cooked mode), on an error too.
import { int } from '../args.js';
import { ApiError, type Api } from '../api.js';
import type { Ctx } from '../context.js';
import { kw, round, table } from '../output.js';
import type { StatusView } from './fleet.js';

interface Tick { price: number; ts: string }
interface Economics {
  prices: null | { btc_usd: Tick | null; gpu_spot_usd_h: Tick | null; power_usd_kwh: Record<string, Tick | null> };
  sites: Array<{ id: string; mode: string; grid_hold: boolean; decision: null | { at: string; rule: string; summary: string } }>;
}

const ESC = '\x1b[';
const ENTER = `${ESC}?1049h${ESC}?25l`;
const LEAVE = `${ESC}?25h${ESC}?1049l`;

function bar(frac: number, width = 10): string {
  const n = Math.max(0, Math.min(width, Math.round(frac * width)));
  return '█'.repeat(n) + '░'.repeat(width - n);
}

const fit = (s: string, w: number) => ([...s].length > w ? [...s].slice(0, Math.max(0, w - 1)).join('') + '…' : s);

/** one frame, as lines no wider than `cols` */
export function frame(o: { url: string; status: StatusView | null; econ: Economics | null; error: string | null; cols: number; now: number; live: boolean }): string[] {
  const lines = [`hcp top  ${o.url}  ${new Date(o.now).toISOString().slice(0, 19)}Z${o.live ? '  (q quits)' : ''}`];
  const s = o.status;
  if (s) {
    const f = s.fleet;
    const cap = s.sites.reduce((n, x) => n + (x.power_capacity_kw ?? 0), 0);
    const gpus = s.sites.reduce((n, x) => n + x.gpus, 0);
    const busy = s.sites.reduce((n, x) => n + x.gpus_busy, 0);
    lines.push(`fleet  ${f.sites_online}/${f.sites_total} sites online  ${f.devices_online}/${f.devices_total} devices  ${kw(f.power_w)} / ${round(cap, 0)} kW  ${round(f.hashrate_ths, 0)} TH/s  GPUs ${busy}/${gpus} busy${f.gpu_utilization_pct === null ? '' : ` (${round(f.gpu_utilization_pct, 0)}% util)`}`);
    const p = o.econ?.prices;
    if (p) {
      const power = Object.entries(p.power_usd_kwh).filter(([, t]) => t).map(([k, t]) => `${k} $${round(t!.price, 4)}/kWh`).join('  ');
      lines.push(`prices BTC ${p.btc_usd ? `$${round(p.btc_usd.price, 0)}` : '-'}  GPU ${p.gpu_spot_usd_h ? `$${round(p.gpu_spot_usd_h.price, 2)}/h` : '-'}  ${power}`);
    }
    lines.push('');
    const econ = new Map((o.econ?.sites ?? []).map((x) => [x.id, x]));
    const t = table(
      ['SITE', 'REGION', 'ONLINE', 'POWER / CAP kW', '', 'HASH TH/s', 'GPUS BUSY', 'GPU UTIL', 'MODE', 'DECISION'],
      s.sites.map((x) => {
        const e = econ.get(x.id);
        const capKw = x.power_capacity_kw;
        const d = e?.decision;
        return [
          x.id, x.region, x.online, `${(x.power_w / 1000).toFixed(1)} / ${capKw ?? '-'}`, capKw ? bar(x.power_w / 1000 / capKw) : '', round(x.hashrate_ths, 0),
          `${x.gpus_busy}/${x.gpus}`, x.gpu_utilization_pct === null ? null : `${round(x.gpu_utilization_pct, 0)}%`,
          e ? `${e.mode}${e.grid_hold ? ' GRID' : ''}` : null, d ? d.summary : null,
        ];
      }),
    );
    lines.push(...t.trimEnd().split('\n'));
  }
  if (o.error) lines.push('', o.error);
  return lines.map((l) => fit(l, o.cols));
}

async function fetchAll(api: Api): Promise<{ status: StatusView; econ: Economics | null }> {
  const [status, econ] = await Promise.all([
    api.get<StatusView>('/api/v1/status'),
    // the engine may be off (503 economics_off), or the key may not read economics: no decisions then
    api.get<Economics>('/api/v1/economics', { limit: 1 }).catch((e) => {
      if (e instanceof ApiError && (e.status === 503 || e.status === 403)) return null;
      throw e;
    }),
  ]);
  return { status, econ };
}

const fatal = (e: unknown) => e instanceof ApiError && (e.status === 401 || e.status === 403 || e.status === 404);

export async function top(ctx: Ctx): Promise<number> {
  const interval = int(ctx.values, 'interval', 200, 60_000) ?? 1000;
  const out = process.stdout;
  const live = out.isTTY === true && !ctx.values.once;
  if (!live) {
    const { status, econ } = await fetchAll(ctx.api);
    ctx.out(frame({ url: ctx.api.url, status, econ, error: null, cols: Infinity, now: Date.now(), live }).join('\n') + '\n');
    return 0;
  }

  let status: StatusView | null = null;
  let econ: Economics | null = null;
  let error: string | null = null;
  const draw = () => {
    const lines = frame({ url: ctx.api.url, status, econ, error, cols: out.columns || 80, now: Date.now(), live });
    out.write(`${ESC}H${lines.map((l) => `${l}${ESC}K`).join('\n')}\n${ESC}J`);
  };

  const stdin = process.stdin;
  return new Promise<number>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    let stopped = false;
    const stop = (code: number, err?: unknown) => {
      if (stopped) return;
      stopped = true;
      clearTimeout(timer);
      stdin.off('data', onKey);
      out.off('resize', draw);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      if (stdin.isTTY) stdin.setRawMode(false);
      stdin.pause();
      out.write(LEAVE);
      if (err) reject(err);
      else resolve(code);
    };
    const onKey = (b: Buffer) => {
      const k = b.toString('utf8');
      if (k === 'q' || k === 'Q' || k.includes('\x03') || k === '\x1b') stop(0);
    };
    const onSignal = () => stop(130);
    const tick = async () => {
      try {
        ({ status, econ } = await fetchAll(ctx.api));
        error = null;
      } catch (e) {
        if (fatal(e)) return stop(1, e);
        error = `${(e as Error).message}; retrying every ${interval / 1000} s`;
      }
      if (stopped) return;
      draw();
      timer = setTimeout(() => void tick(), interval);
    };
    out.write(ENTER);
    if (stdin.isTTY) stdin.setRawMode(true);
    stdin.resume();
    stdin.on('data', onKey);
    out.on('resize', draw);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    void tick();
  });
}
