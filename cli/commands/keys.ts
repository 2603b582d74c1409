// keys list|create|revoke (admins; control-plane/http/routes/keys.ts). A new key's secret is in
// the create answer only: printed once, on stdout, with a note on stderr to keep it.
import { oneOf, required, str } from '../args.js';
import type { Ctx } from '../context.js';
import { json, table, when } from '../output.js';

const ROLES = ['admin', 'operator', 'customer', 'viewer', 'agent', 'feed'] as const;

interface KeyView {
  id: string; name: string; role: string; customer_id: string | null; site: string | null;
  created_at: string; created_by: string | null; revoked_at: string | null; revoke_reason: string | null;
}

const rows = (ks: KeyView[]) =>
  table(['KEY', 'NAME', 'ROLE', 'CUSTOMER', 'SITE', 'CREATED', 'BY', 'REVOKED'],
    ks.map((k) => [k.id, k.name, k.role, k.customer_id, k.site, when(k.created_at), k.created_by, k.revoked_at ? `${when(k.revoked_at)}${k.revoke_reason ? ` (${k.revoke_reason})` : ''}` : null]));

export async function list(ctx: Ctx): Promise<number> {
  const r = await ctx.api.get<{ keys: KeyView[] }>('/api/v1/keys', { include_revoked: ctx.values.all ? 'true' : undefined });
  ctx.out(ctx.json ? json(r) : rows(r.keys));
  return 0;
}

export async function create(ctx: Ctx): Promise<number> {
  const v = ctx.values;
  const role = oneOf(v, 'role', ROLES) ?? required(v, 'role', ctx.spec);
  const body = { role, ...(str(v, 'name') ? { name: str(v, 'name') } : {}), ...(str(v, 'customer') ? { customer_id: str(v, 'customer') } : {}), ...(str(v, 'site') ? { site: str(v, 'site') } : {}) };
  const { body: k } = await ctx.api.post<KeyView & { secret: string }>('/api/v1/keys', body);
  if (ctx.json) return ctx.out(json(k)), 0;
  ctx.out(rows([k]));
  ctx.err('the secret is shown this once; keep it (HCP_API_KEY or the config file):\n');
  ctx.out(`${k.secret}\n`);
  return 0;
}

export async function revoke(ctx: Ctx): Promise<number> {
  const k = await ctx.api.del<KeyView>(`/api/v1/keys/${encodeURIComponent(ctx.positionals[0]!)}`, { reason: str(ctx.values, 'reason') });
  ctx.out(ctx.json ? json(k) : rows([k]));
  return 0;
}
