// One backtest on a thread of its own (runner.ts starts it): the price path from a seed or a CSV,
// runBacktest over it, the report back. A 720-hour run takes seconds of CPU; on the control
// plane's event loop that would stall every request and the agents' streams meanwhile.
import { parentPort, workerData } from 'node:worker_threads';
import { DEFAULT_BACKTEST_FLEET, runBacktest } from '../economics/backtest.js';
import { backtestReport } from '../economics/backtest-report.js';
import { DEFAULT_ENGINE_CONFIG } from '../economics/engine.js';
import { MarketCsvError, parseMarketCsv } from '../../sim-hardware/market-csv.js';
import { marketTicks, type MarketTick } from '../../sim-hardware/market.js';
import { BACKTEST_START_MS, MAX_BACKTEST_HOURS, STEP_S, type BacktestReply, type BacktestRequest } from './protocol.js';

function run(req: BacktestRequest): BacktestReply {
  let fleet = DEFAULT_BACKTEST_FLEET;
  let ticks: MarketTick[];
  let fromMs: number;
  let toMs: number;
  if ('seed' in req) {
    fromMs = BACKTEST_START_MS;
    toMs = fromMs + req.hours * 3600_000;
    ticks = [...marketTicks({ seed: req.seed, startMs: fromMs, sites: [{ id: fleet.siteId, utcOffsetHours: fleet.utcOffsetHours }] }, toMs)];
  } else {
    const refuse = (message: string, problems: string[] = [message]): BacktestReply => ({ ok: false, field: 'prices_csv', message, problems });
    try {
      ticks = parseMarketCsv(req.pricesCsv);
    } catch (err) {
      if (err instanceof MarketCsvError) return refuse(`prices_csv: ${err.problems.slice(0, 20).join('; ')}${err.problems.length > 20 ? `; and ${err.problems.length - 20} more` : ''}`, err.problems.slice(0, 100));
      throw err;
    }
    // the site is the first one with power prices, as `npm run backtest -- --prices` takes it
    const site = ticks.find((t) => t.feed === 'power')?.site;
    if (!site) return refuse('prices_csv: no power prices (feed power, with a site)');
    if (!ticks.some((t) => t.feed === 'btc_usd')) return refuse('prices_csv: no btc_usd prices: hashprice needs them');
    fleet = { ...fleet, siteId: site };
    fromMs = Date.parse(ticks[0]!.ts);
    // to the end of the site's last power interval: a step past it would be scored at a stale price
    const lastPower = ticks.filter((t) => t.feed === 'power' && t.site === site).at(-1)!;
    toMs = Date.parse(lastPower.ts) + STEP_S * 1000;
    const hours = (toMs - fromMs) / 3600_000;
    if (hours > MAX_BACKTEST_HOURS) return refuse(`prices_csv: the prices span ${Math.round(hours)} hours (${ticks[0]!.ts} to ${ticks.at(-1)!.ts}); at most ${MAX_BACKTEST_HOURS}`);
  }
  const r = runBacktest({ ticks, fromMs, toMs, stepS: STEP_S, fleet });
  return { ok: true, report: backtestReport(r, { fleet, fromMs, toMs, seed: 'seed' in req ? req.seed : null, network: DEFAULT_ENGINE_CONFIG.network }) };
}

const port = parentPort;
if (!port) throw new Error('backtest-worker.ts runs as a worker thread (runner.ts starts it)');
port.postMessage(run(workerData as BacktestRequest));
