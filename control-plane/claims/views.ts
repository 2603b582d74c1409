// Claims and desired states as the APIs show them (snake_case, ISO times).
import type { Claim, DesiredState } from './model.js';
import type { ReconcilerView } from './reconciler.js';

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

/** the reconciler's side of GET /api/v1/sites/:id/desired */
export function reconcilerView(v: ReconcilerView) {
  const observed = v.observed.map((o) => ({ device_id: o.deviceId, online: o.online, state: o.state, power_target_w: o.powerTargetW, power_w: o.powerW }));
  return {
    reconciled_at: iso(v.atMs),
    observed: {
      mining: observed.filter((o) => o.online && (o.state === 'mining' || o.state === 'ramping')).length,
      asleep: observed.filter((o) => o.online && o.state === 'sleeping').length,
      offline: observed.filter((o) => !o.online).length,
      devices: observed,
    },
    divergent: v.divergent.map((d) => ({ device_id: d.deviceId, reason: d.reason })),
    held: v.held.map((h) => ({ device_id: h.deviceId, why: h.why })),
    in_flight: v.inFlight.map((c) => ({ command_id: c.commandId, devices: c.deviceIds.length, mining: c.mining, power_target_w: c.powerTargetW, sent_at: iso(c.sentAtMs), state: c.state })),
    desired_version: { made: v.desiredVersion, sent: v.desiredSentVersion, held_by_agent: v.desiredHeldVersion },
    ramp: { kw_per_min: v.ramp.kwPerMin, window_s: v.ramp.windowMs / 1000, used_kw: Math.round(v.ramp.usedKw * 10) / 10, starts: v.ramp.starts, capacity_kw: v.ramp.capacityKw },
  };
}
