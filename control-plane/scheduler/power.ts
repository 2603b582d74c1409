// A site's power budget: pure, no I/O. GPU power plus ASIC power stays within the site's
// capacity (facilities.power_capacity_kw). A capacity of 0 means none was configured (sites an
// agent registered on its own): no budget is enforced there.
//
// Headroom comes from the site's ASICs, in two steps only: stock firmware offers stock power or
// low-power mode and nothing between (agent/drivers/cgminer-driver.ts, miner-mode 3 = 75 % of
// stock), so a power target other than that would be refused by real miners. First ASICs go to
// low-power mode, biggest draw first, until enough is saved; if that is not enough, lowered
// ASICs are switched off. Only as many as needed.

/** low-power mode draws this share of stock power (S21 miner-mode 3) */
export const LOW_POWER_FRACTION = 0.75;

export interface AsicPower {
  id: string;
  /** the draw the budget counts now: latest sample, or the target of a command in flight */
  powerW: number;
  ratedPowerW: number;
}

export interface PowerRequest {
  siteId: string;
  /** to low-power mode, at this target */
  lower: Array<{ id: string; targetW: number }>;
  /** switched off */
  off: string[];
  savesW: number;
}

export const lowPowerW = (ratedPowerW: number) => Math.round(ratedPowerW * LOW_POWER_FRACTION);

/** what to lower to free `needW` at a site, or null when its ASICs cannot free that much */
export function planHeadroom(siteId: string, asics: readonly AsicPower[], needW: number): PowerRequest | null {
  if (needW <= 0) return { siteId, lower: [], off: [], savesW: 0 };
  const running = asics.filter((a) => a.powerW > 0).sort((a, b) => b.powerW - a.powerW || a.id.localeCompare(b.id));
  const lowered: Array<{ a: AsicPower; targetW: number }> = [];
  let saved = 0;
  for (const a of running) {
    if (saved >= needW) break;
    const target = lowPowerW(a.ratedPowerW);
    if (a.powerW <= target) continue; // already at or below low power
    lowered.push({ a, targetW: target });
    saved += a.powerW - target;
  }
  const off: string[] = [];
  if (saved < needW) {
    // Switching off: ASICs already at low power, then the lowered ones, biggest first.
    const candidates = [
      ...running.filter((a) => a.powerW <= lowPowerW(a.ratedPowerW)).map((a) => ({ a, draw: a.powerW })),
      ...lowered.map((l) => ({ a: l.a, draw: l.targetW })),
    ].sort((x, y) => y.draw - x.draw || x.a.id.localeCompare(y.a.id));
    for (const c of candidates) {
      if (saved >= needW) break;
      off.push(c.a.id);
      saved += c.draw;
    }
    if (saved < needW) return null;
  }
  const offSet = new Set(off);
  return {
    siteId,
    lower: lowered.filter((l) => !offSet.has(l.a.id)).map((l) => ({ id: l.a.id, targetW: l.targetW })),
    off,
    savesW: saved,
  };
}
