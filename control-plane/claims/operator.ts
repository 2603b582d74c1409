// What an operator asks of the fleet's ASICs, as operator claims (REST and gRPC both call these).
// An operator's claim outranks everything but the grid; it can carry an expiry ("off for 2 h"),
// and releasing it hands control back to the next claim down. The reconciler is run for the
// sites at once, so a call answers with the commands it caused (and ?wait=true can wait for them).
//
// Manual mode is an operator claim too: "manual" pins every ASIC of the site to what it is meant
// to be doing now (one operator claim per group), "auto" releases the site's operator claims.
import type { CommandRecord } from '../commands/model.js';
import { HcpError } from '../errors.js';
import type { Registry } from '../registry/registry.js';
import type { Claim } from './model.js';
import type { ClaimsService } from './service.js';

export interface OperatorControlsDeps {
  claims: ClaimsService;
  registry: Registry;
  reconcileNow: (siteIds: string[]) => Promise<CommandRecord[]>;
}

export interface Expiry {
  /** unix ms; null = until released */
  expiresAtMs: number | null;
}

const field = (name: string, message: string) => new HcpError('invalid_argument', `${name}: ${message}`, 'validation_failed', { fields: [{ field: name, message }] });

/** expires_at (ISO time) or duration_s (from now), not both */
export function expiryOf(b: { expires_at?: string | null; duration_s?: number | null }, nowMs = Date.now()): number | null {
  if (b.expires_at && b.duration_s) throw field('duration_s', 'give expires_at or duration_s, not both');
  if (b.duration_s !== undefined && b.duration_s !== null) {
    if (!Number.isFinite(b.duration_s) || b.duration_s <= 0) throw field('duration_s', 'must be a positive number of seconds');
    return nowMs + b.duration_s * 1000;
  }
  if (b.expires_at) {
    const t = Date.parse(b.expires_at);
    if (!Number.isFinite(t)) throw field('expires_at', 'must be an ISO 8601 time');
    if (t <= nowMs) throw field('expires_at', 'is in the past');
    return t;
  }
  return null;
}

export function createOperatorControls(d: OperatorControlsDeps) {
  return {
    async setMining(req: { site: string; enabled: boolean; powerTargetW?: number | null; deviceIds?: string[]; actor: string; reason?: string; expiresAtMs: number | null }): Promise<{ claim: Claim; commands: CommandRecord[] }> {
      const reason = req.reason?.trim() || `mining ${req.enabled ? 'on' : 'off'} by ${req.actor}`;
      const claim = await d.claims.set({
        siteId: req.site, source: 'operator', deviceIds: req.deviceIds ?? [], actor: req.actor, reason, expiresAtMs: req.expiresAtMs,
        want: { kind: 'mining', enabled: req.enabled, powerTargetW: req.powerTargetW ?? null },
      });
      return { claim, commands: await d.reconcileNow([req.site]) };
    },

    async curtail(req: { sites?: string[]; all?: boolean; reason: string; actor: string; expiresAtMs: number | null }): Promise<{ claims: Claim[]; commands: CommandRecord[] }> {
      if (!req.reason?.trim()) throw field('reason', 'is required');
      if (req.all && req.sites?.length) throw field('sites', 'give sites or all, not both');
      if (!req.all && !req.sites?.length) throw field('sites', 'give the sites to curtail, or all: true');
      const ids = req.all ? d.registry.sites().map((s) => s.id) : [...new Set(req.sites)];
      ids.forEach((id, i) => {
        if (!d.registry.site(id)) throw new HcpError('not_found', `site ${JSON.stringify(id)} not found`, 'unknown_site', { fields: [{ field: `sites.${i}`, message: 'unknown site' }] });
      });
      const claims = await d.claims.setMany(ids.map((siteId) => ({
        siteId, source: 'operator' as const, deviceIds: [], want: { kind: 'mining' as const, enabled: false, powerTargetW: null }, reason: req.reason, actor: req.actor, expiresAtMs: req.expiresAtMs,
      })));
      return { claims, commands: await d.reconcileNow(ids) };
    },

    /** manual: every ASIC pinned, by operator claims, to what it is meant to be doing now */
    async hold(site: string, actor: string, reason: string | null, expiresAtMs: number | null = null): Promise<Claim[]> {
      const groups = d.claims.desired(site).groups;
      const claims = await d.claims.setMany(groups.map((g) => ({
        siteId: site, source: 'operator' as const, deviceIds: g.deviceIds, actor, expiresAtMs,
        want: { kind: 'mining' as const, enabled: g.mining, powerTargetW: g.powerTargetW },
        reason: reason?.trim() || `manual mode by ${actor}`,
      })));
      await d.reconcileNow([site]);
      return claims;
    },

    /** auto: the site's operator claims end; control passes to the claims below */
    async releaseAll(site: string, actor: string, reason: string | null): Promise<Claim[]> {
      const ended = await d.claims.releaseSource('operator', site, actor, reason?.trim() || `auto mode by ${actor}`);
      await d.reconcileNow([site]);
      return ended;
    },

    /** manual while any operator claim stands at the site */
    mode: (site: string): 'auto' | 'manual' => (d.claims.list(site).some((c) => c.source === 'operator') ? 'manual' : 'auto'),
  };
}

export type OperatorControls = ReturnType<typeof createOperatorControls>;
