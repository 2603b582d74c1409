// POST /api/v1/economics/backtest — the backtest (economics/backtest.ts) over a seeded price path
// ({ seed, hours }) or the caller's prices ({ prices_csv }, sim-hardware/market-csv.ts's format),
// on a worker thread (backtest/runner.ts); answers the report (economics/backtest-report.ts):
// hourly price, hashprice, decisions and cumulative profit for HCP, always-on, the strike rule
// and the perfect-foresight optimum, and the summary `npm run backtest` prints.
import { createRoute, z } from '@hono/zod-openapi';
import { HcpError } from '../../errors.js';
import { MAX_BACKTEST_HOURS, type BacktestRequest } from '../../backtest/protocol.js';
import type { Api, HttpDeps } from '../deps.js';

/**
 * Under the default body limit (HCP_HTTP_BODY_LIMIT_BYTES, 1 MiB) with room for the JSON around
 * it: ~20,000 ticks, a month of 5-minute power prices with hourly BTC.
 */
export const MAX_PRICES_CSV_CHARS = 1_000_000;

const Json = z.record(z.string(), z.unknown());

export function registerBacktestRoutes(app: Api, deps: HttpDeps): void {
  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/economics/backtest',
      summary: 'Backtest the economic engine against always-on, the strike rule and the optimum, on seeded or uploaded prices',
      request: {
        body: {
          required: true,
          content: {
            'application/json': {
              // one object, not a union of the two shapes, so a refusal names its field
              schema: z.object({
                seed: z.number().int().min(0).max(2 ** 31 - 1).optional(),
                hours: z.number().int().min(1).max(MAX_BACKTEST_HOURS).optional(),
                prices_csv: z.string().min(1).max(MAX_PRICES_CSV_CHARS).optional(),
              }),
            },
          },
        },
      },
      responses: { 200: { description: 'the report', content: { 'application/json': { schema: Json } } } },
    }),
    async (c) => {
      const b = c.req.valid('json');
      const refuse = (field: string, message: string) => new HcpError('invalid_argument', `${field}: ${message}`, 'validation_failed', { fields: [{ field, message }] });
      let req: BacktestRequest;
      if (b.prices_csv !== undefined) {
        if (b.seed !== undefined || b.hours !== undefined) throw refuse(b.seed !== undefined ? 'seed' : 'hours', 'give seed and hours, or prices_csv, not both');
        req = { pricesCsv: b.prices_csv };
      } else if (b.seed !== undefined) {
        if (b.hours === undefined) throw refuse('hours', `required with seed (1 to ${MAX_BACKTEST_HOURS})`);
        req = { seed: b.seed, hours: b.hours };
      } else {
        throw refuse('seed', 'give seed and hours, or prices_csv');
      }
      if (!deps.backtests) throw new HcpError('unavailable', 'backtests are not run by this control plane', 'backtest_off');
      const reply = await deps.backtests.run(req);
      if (!reply.ok) {
        throw new HcpError('invalid_argument', reply.message, 'invalid_price_csv', { fields: reply.problems.map((message) => ({ field: reply.field, message })) });
      }
      return c.json(reply.report as unknown as Record<string, unknown>, 200);
    },
  );
}
