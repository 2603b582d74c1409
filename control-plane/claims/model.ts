// Claims: what each part of the control plane wants a site's ASICs to do, stated instead of sent
// (docs/claims.md). The grid response, operators, demand response, the scheduler's headroom,
// time-of-day schedules and the economic engine each state claims; `resolve` (resolve.ts, pure)
// turns the live claims into one desired state per device; the site's reconciler
// (reconciler.ts) closes the gap between that and what telemetry reports. Nothing else sends
// mining commands.

/** in precedence order: a claim of an earlier source beats one of a later source */
export const CLAIM_SOURCES = ['grid', 'operator', 'demand_response', 'scheduler', 'schedule', 'economics'] as const;
export type ClaimSource = (typeof CLAIM_SOURCES)[number];
/** the rule that decided a device: a claim source, or `default` (no claim: S21s boot mining at stock power) */
export type DesiredRule = ClaimSource | 'default';

export const precedence = (s: ClaimSource): number => CLAIM_SOURCES.indexOf(s);

export type ClaimWant =
  /** mining on (at the model's stock power, or at powerTargetW) or off */
  | { kind: 'mining'; enabled: boolean; powerTargetW: number | null }
  /** the whole site (ASICs and GPUs) draws at most this; ASICs of lower-precedence claims are shed to fit */
  | { kind: 'site_cap'; capKw: number };

export interface Claim {
  id: string;
  siteId: string;
  source: ClaimSource;
  /** ASICs of the site; empty = every ASIC of the site. Ignored for site_cap. */
  deviceIds: string[];
  want: ClaimWant;
  reason: string;
  /** who stated it: `key:<name>` for people and programs, `system:<part>` for the control plane */
  actor: string;
  createdAtMs: number;
  /** null = until released */
  expiresAtMs: number | null;
}

export const isLiveClaim = (c: Claim, nowMs: number): boolean => c.expiresAtMs === null || c.expiresAtMs > nowMs;

/** what resolve needs to know of one ASIC */
export interface AsicSpec {
  id: string;
  ratedPowerW: number;
  /** drawn with the hashboards off */
  standbyW: number;
  /** the power targets the device accepts (W), inclusive */
  minPowerW: number;
  maxPowerW: number;
  /** J/TH at stock: the least efficient are shed first under a cap */
  jPerTh: number;
}

export interface SiteSpec {
  siteId: string;
  /** kW; 0 = none configured (no cap from capacity) */
  capacityKw: number;
  /** what the GPUs draw or are committed to, kW: it comes off any cap first */
  gpuKw: number;
  asics: readonly AsicSpec[];
}

export interface DesiredAsic {
  deviceId: string;
  mining: boolean;
  /** while mining; null = stock */
  powerTargetW: number | null;
  rule: DesiredRule;
  /** the claim that won; null for `default` */
  claimId: string | null;
}

export interface DesiredGroup {
  rule: DesiredRule;
  claimId: string | null;
  reason: string | null;
  mining: boolean;
  powerTargetW: number | null;
  deviceIds: string[];
}

export interface DesiredState {
  siteId: string;
  atMs: number;
  asics: DesiredAsic[];
  /** the tightest site cap in force (kW) and who set it; null = none */
  capKw: number | null;
  capClaimId: string | null;
  /** the devices grouped by (rule, claim, mining, target), for the API */
  groups: DesiredGroup[];
}

/**
 * What the rest of the control plane uses to state claims. One implementation
 * (claims/service.ts): stored (claims table), audited, and applied by the site's reconciler.
 */
export interface ClaimsApi {
  /**
   * States a claim. `replaces`: an earlier claim id of the same source this one supersedes
   * (released in the same step). Checks the devices and the power target against the site's
   * models; throws HcpError invalid_argument naming the field.
   */
  set(c: Omit<Claim, 'id' | 'createdAtMs'> & { id?: string; replaces?: string | null }): Promise<Claim>;
  /** ends a claim; control passes to the next claim down. Releasing an ended claim is a no-op. */
  release(id: string, actor: string, reason: string): Promise<Claim | null>;
  /** ends every claim of this source at the site (all sites when siteId is null) */
  releaseSource(source: ClaimSource, siteId: string | null, actor: string, reason: string): Promise<Claim[]>;
  /** the live claims (of a site) */
  list(siteId?: string): Claim[];
  /** the site's resolved desired state now */
  desired(siteId: string): DesiredState;
  /**
   * Resolves when every device the claim names is observed in the state the claim wants (or the
   * claim lost to a higher one, which also counts as done: it is no longer the claim's to move),
   * or false after timeoutMs.
   */
  waitConverged(claimId: string, timeoutMs: number): Promise<boolean>;
}
