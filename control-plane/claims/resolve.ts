// PLACEHOLDER until the full resolver lands (helper D): device claims by precedence, no caps.
import { isLiveClaim, precedence, type Claim, type DesiredAsic, type DesiredState, type SiteSpec } from './model.js';

export function resolve(claims: readonly Claim[], site: SiteSpec, nowMs: number): DesiredState {
  const live = claims.filter((c) => c.siteId === site.siteId && isLiveClaim(c, nowMs) && c.want.kind === 'mining');
  const asics: DesiredAsic[] = site.asics.map((a) => {
    let win: Claim | null = null;
    for (const c of live) {
      if (c.deviceIds.length && !c.deviceIds.includes(a.id)) continue;
      if (!win || precedence(c.source) < precedence(win.source) || (c.source === win.source && c.createdAtMs >= win.createdAtMs)) win = c;
    }
    if (!win || win.want.kind !== 'mining') return { deviceId: a.id, mining: true, powerTargetW: null, rule: 'default', claimId: null };
    return { deviceId: a.id, mining: win.want.enabled, powerTargetW: win.want.enabled ? win.want.powerTargetW : null, rule: win.source, claimId: win.id };
  });
  return { siteId: site.siteId, atMs: nowMs, asics, capKw: null, capClaimId: null, groups: [] };
}
