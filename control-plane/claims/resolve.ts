// The resolver: the live claims of one site → what every one of its ASICs should be doing
// (control-plane/claims/model.ts). Pure: no clock, no I/O; the same claims give the same state.
//
// Per ASIC the 'mining' claim of the earliest source in CLAIM_SOURCES wins (grid > operator >
// demand response > scheduler > schedule > economics); within one source the later claim wins
// (then the larger id), so of two operators' claims on the same devices the later one decides.
// No claim: mining at stock power, as an S21 boots. Then the site caps: a cap of source S only
// sheds ASICs decided by a later source (or by the default), least efficient first, until the
// site's load (GPUs + ASICs) fits.
import {
  CLAIM_SOURCES,
  isLiveClaim,
  precedence,
  type AsicSpec,
  type Claim,
  type ClaimSource,
  type DesiredAsic,
  type DesiredGroup,
  type DesiredRule,
  type DesiredState,
  type SiteSpec,
} from './model.js';

type MiningClaim = Claim & { want: { kind: 'mining'; enabled: boolean; powerTargetW: number | null } };
type CapClaim = Claim & { want: { kind: 'site_cap'; capKw: number } };

/** a rule's rank: the claim sources in order, then `default` last */
export const ruleRank = (r: DesiredRule): number => (r === 'default' ? CLAIM_SOURCES.length : precedence(r));

/** earliest source first; within one source the later claim first, then the larger id */
export function compareClaims(a: Claim, b: Claim): number {
  return precedence(a.source) - precedence(b.source) || b.createdAtMs - a.createdAtMs || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}

/** a power target inside what the device accepts (the service validates; this is defensive) */
export function clampTarget(spec: AsicSpec, w: number): number {
  return Math.min(Math.max(w, spec.minPowerW), spec.maxPowerW);
}

/** what one ASIC draws in this desired state, W */
export function desiredDrawW(a: Pick<DesiredAsic, 'mining' | 'powerTargetW'>, spec: AsicSpec): number {
  return a.mining ? (a.powerTargetW ?? spec.ratedPowerW) : spec.standbyW;
}

/** least efficient first: highest J/TH, then highest draw, then id */
function shedOrder(a: { d: DesiredAsic; s: AsicSpec }, b: { d: DesiredAsic; s: AsicSpec }): number {
  return b.s.jPerTh - a.s.jPerTh || desiredDrawW(b.d, b.s) - desiredDrawW(a.d, a.s) || (a.d.deviceId < b.d.deviceId ? -1 : a.d.deviceId > b.d.deviceId ? 1 : 0);
}

export function resolve(claims: readonly Claim[], site: SiteSpec, nowMs: number): DesiredState {
  const live = claims.filter((c) => c.siteId === site.siteId && isLiveClaim(c, nowMs));
  const byId = new Map(live.map((c) => [c.id, c]));
  const mining = live.filter((c): c is MiningClaim => c.want.kind === 'mining').sort(compareClaims);
  const specs = [...site.asics].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const known = new Set(specs.map((s) => s.id));

  // the winning mining claim per ASIC: the first applicable one in precedence order
  const winner = new Map<string, MiningClaim>();
  for (const c of mining) {
    const ids = c.deviceIds.length ? c.deviceIds : specs.map((s) => s.id);
    for (const id of ids) if (known.has(id) && !winner.has(id)) winner.set(id, c);
  }
  const asics: DesiredAsic[] = specs.map((s) => {
    const c = winner.get(s.id);
    if (!c) return { deviceId: s.id, mining: true, powerTargetW: null, rule: 'default', claimId: null };
    const on = c.want.enabled;
    return {
      deviceId: s.id,
      mining: on,
      powerTargetW: on && c.want.powerTargetW !== null ? clampTarget(s, c.want.powerTargetW) : null,
      rule: c.source,
      claimId: c.id,
    };
  });

  // Site caps, in precedence order; of several caps of one source only the tightest matters
  // (the looser ones constrain the same ASICs).
  const caps = live.filter((c): c is CapClaim => c.want.kind === 'site_cap');
  const tightest = new Map<ClaimSource, CapClaim>();
  for (const c of caps) {
    const t = tightest.get(c.source);
    if (!t || c.want.capKw < t.want.capKw || (c.want.capKw === t.want.capKw && compareClaims(c, t) < 0)) tightest.set(c.source, c);
  }
  const pairs = asics.map((d, i) => ({ d, s: specs[i]! }));
  for (const cap of [...tightest.values()].sort(compareClaims)) {
    const capW = cap.want.capKw * 1000;
    let loadW = site.gpuKw * 1000 + pairs.reduce((w, p) => w + desiredDrawW(p.d, p.s), 0);
    if (loadW <= capW) continue;
    const rank = precedence(cap.source);
    const sheddable = pairs.filter((p) => p.d.mining && ruleRank(p.d.rule) > rank).sort(shedOrder);
    for (const p of sheddable) {
      if (loadW <= capW) break;
      loadW -= desiredDrawW(p.d, p.s) - p.s.standbyW;
      Object.assign(p.d, { mining: false, powerTargetW: null, rule: cap.source, claimId: cap.id });
    }
  }
  let cap: CapClaim | null = null;
  for (const c of tightest.values()) if (!cap || c.want.capKw < cap.want.capKw || (c.want.capKw === cap.want.capKw && compareClaims(c, cap) < 0)) cap = c;

  return {
    siteId: site.siteId,
    atMs: nowMs,
    asics,
    capKw: cap ? cap.want.capKw : null,
    capClaimId: cap ? cap.id : null,
    groups: groupDesired(asics, (id) => byId.get(id)?.reason ?? null),
  };
}

/** the devices grouped by (rule, claim, reason, mining, target): precedence order, then claim, on before off, target */
export function groupDesired(asics: readonly DesiredAsic[], reasonOf: (claimId: string) => string | null): DesiredGroup[] {
  const groups = new Map<string, DesiredGroup>();
  for (const a of asics) {
    const reason = a.claimId === null ? null : reasonOf(a.claimId);
    const key = JSON.stringify([a.rule, a.claimId, reason, a.mining, a.powerTargetW]);
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { rule: a.rule, claimId: a.claimId, reason, mining: a.mining, powerTargetW: a.powerTargetW, deviceIds: [] }));
    g.deviceIds.push(a.deviceId);
  }
  const out = [...groups.values()];
  for (const g of out) g.deviceIds.sort();
  return out.sort(
    (a, b) =>
      ruleRank(a.rule) - ruleRank(b.rule) ||
      (a.claimId ?? '').localeCompare(b.claimId ?? '') ||
      Number(b.mining) - Number(a.mining) ||
      (a.powerTargetW ?? -1) - (b.powerTargetW ?? -1) ||
      (a.deviceIds[0] ?? '').localeCompare(b.deviceIds[0] ?? ''),
  );
}
