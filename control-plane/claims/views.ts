// Claims and desired states as the APIs show them (snake_case, ISO times).
import type { Claim, DesiredState } from './model.js';

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function claimView(c: Claim) {
  return {
    id: c.id,
    site: c.siteId,
    source: c.source,
    want: c.want.kind === 'mining'
      ? { kind: 'mining', enabled: c.want.enabled, power_target_w: c.want.powerTargetW }
      : { kind: 'site_cap', cap_kw: c.want.capKw },
    device_ids: c.deviceIds,
    devices: c.deviceIds.length ? c.deviceIds.length : 'all',
    reason: c.reason,
    actor: c.actor,
    created_at: iso(c.createdAtMs),
    expires_at: iso(c.expiresAtMs),
  };
}

export function desiredView(s: DesiredState) {
  return {
    at: iso(s.atMs),
    cap_kw: s.capKw,
    cap_claim: s.capClaimId,
    mining: s.asics.filter((a) => a.mining).length,
    asleep: s.asics.filter((a) => !a.mining).length,
    groups: s.groups.map((g) => ({
      rule: g.rule, claim: g.claimId, reason: g.reason, mining: g.mining, power_target_w: g.powerTargetW, devices: g.deviceIds.length, device_ids: g.deviceIds,
    })),
  };
}
