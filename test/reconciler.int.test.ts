import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { RECONCILER_ACTOR } from '../control-plane/claims/reconciler.js';
import type { Claim } from '../control-plane/claims/model.js';
import type { CommandRecord } from '../control-plane/commands/model.js';
import { loadControlPlaneConfig } from '../control-plane/config.js';
import { createControlPlane, type ControlPlane } from '../control-plane/control-plane.js';
import { MiningState } from '../proto/gen/hcp/v1/telemetry.js';
import { AGENT_BINARY } from './harness/agent-binary.js';
import { bearer, TEST_ADMIN_KEY } from './harness/auth.js';
import { describePg } from './harness/pg.js';
import { startBinary, type Proc } from './harness/processes.js';
import { waitFor } from './harness/wait-for.js';

const SITE = 'canada-1';
// 150 kW/min over a 3 s window: 7.5 kW per window, two S21 XPs (2 × 3.645 kW) at a time
const RAMP_KW_PER_MIN = 150;
const WINDOW_MS = 3_000;
const LIMIT_KW = (RAMP_KW_PER_MIN * WINDOW_MS) / 60_000;

describePg('site reconciler: claims to commands to telemetry, with a real bus, gateway and agent', (pg) => {
  let cp: ControlPlane;
  let agent: Proc;
  let grid: Claim;
  const submitted: CommandRecord[] = [];

  const asics = () => cp.registry.devices({ site: SITE, kind: 'asic' });
  const states = () => asics().map((d) => d.asic?.miningState);
  const rec = () => cp.reconciler;

  beforeAll(async () => {
    cp = await createControlPlane(
      loadControlPlaneConfig({
        DATABASE_URL: pg.url, HCP_HTTP_PORT: '0', HCP_GRPC_PORT: '0', HCP_MQTT_PORT: '0', HCP_INGEST_FLUSH_MS: '50',
        HCP_ECONOMICS: 'off', LOG_LEVEL: 'silent', HCP_ADMIN_KEY: TEST_ADMIN_KEY,
        HCP_RAMP_KW_PER_MIN: String(RAMP_KW_PER_MIN), HCP_RAMP_WINDOW_S: String(WINDOW_MS / 1000), HCP_RECONCILE_MS: '200', HCP_RECONCILE_START_S: '15',
      }),
      pino({ level: process.env.TEST_LOG ?? 'silent' }),
    );
    cp.bus.watch((r) => {
      if (r.state === 'pending' && r.actor === RECONCILER_ACTOR && !submitted.some((x) => x.id === r.id)) submitted.push({ ...r });
    });
    const token = (await cp.keys.create({ role: 'agent', siteId: SITE }, 'test')).secret;
    agent = startBinary(`hcp-agent-${SITE}`, AGENT_BINARY, [
      '--site', SITE, '--control-plane', `127.0.0.1:${cp.grpcPort}`, '--mqtt', cp.mqttUrl,
      '--sim-gpus', '1', '--sim-asics', '4', '--sample-interval-ms', '200', '--sim-startup-s', '2',
    ], { PATH: '', HCP_AGENT_TOKEN: token });
    await waitFor(() => asics().length === 4 && asics().every((d) => d.online && d.asic?.miningState === MiningState.MINING_STATE_MINING), {
      timeoutMs: 30_000, message: 'canada-1 ASICs online and mining',
    });
  });

  afterAll(async () => {
    await agent?.kill('SIGKILL');
    await cp?.close();
  });

  it('with no claim the site is left mining: nothing is sent, and the agent holds the desired state', async () => {
    await rec().poke(SITE);
    await rec().poke(SITE);
    expect(submitted).toEqual([]);
    expect(cp.claims.desired(SITE).asics.map((a) => [a.mining, a.rule])).toEqual(Array.from({ length: 4 }, () => [true, 'default']));
    await waitFor(() => rec().view(SITE).desiredHeldVersion === rec().view(SITE).desiredVersion, { message: 'the agent holds the desired state' });
    expect(rec().view(SITE)).toMatchObject({ divergent: [], held: [], inFlight: [] });
  });

  it('a grid "mining off" claim on the site ends with telemetry showing every ASIC asleep, by commands of the reconciler', async () => {
    const before = rec().view(SITE).desiredHeldVersion!;
    grid = await cp.claims.set({
      siteId: SITE, source: 'grid', deviceIds: [], want: { kind: 'mining', enabled: false, powerTargetW: null },
      reason: 'under-frequency 59.6 Hz', actor: 'system:grid', expiresAtMs: null,
    });
    await waitFor(() => states().every((s) => s === MiningState.MINING_STATE_SLEEPING), { timeoutMs: 15_000, message: 'every canada-1 ASIC asleep' });
    // one command for all four (curtailment is never ramp-limited), final, with the claim in its details
    expect(submitted).toHaveLength(1);
    const [c] = submitted;
    expect(c!.payload).toEqual({ type: 'set_mining', enabled: false, deviceIds: asics().map((d) => d.id), powerTargetW: null });
    expect(c!.details).toEqual({ source: 'grid', claim_id: grid.id, reason: 'under-frequency 59.6 Hz' });
    await waitFor(() => cp.bus.get(c!.id)?.state === 'succeeded', { message: 'command succeeded' });
    // the agent holds the new desired state, a later version
    await waitFor(() => rec().view(SITE).desiredHeldVersion! > before, { message: 'the agent holds the grid desired state' });
    // converged: nothing more is sent, nothing held or divergent
    await rec().poke(SITE);
    expect(submitted).toHaveLength(1);
    await waitFor(() => rec().view(SITE).inFlight.length === 0 && rec().view(SITE).held.length === 0, { message: 'view settled' });
    expect(rec().view(SITE).observed.map((o) => o.state)).toEqual(['sleeping', 'sleeping', 'sleeping', 'sleeping']);
  });

  it('when the grid lets go, the ASICs come back in ramp-limited steps', async () => {
    const awakeCounts = new Set<number>();
    const watch = setInterval(() => awakeCounts.add(states().filter((s) => s !== MiningState.MINING_STATE_SLEEPING).length), 20);
    try {
      await cp.claims.release(grid.id, 'system:grid', 'recovered');
      await waitFor(() => states().every((s) => s === MiningState.MINING_STATE_MINING || s === MiningState.MINING_STATE_RAMPING), {
        timeoutMs: 30_000, message: 'every canada-1 ASIC back',
      });
    } finally {
      clearInterval(watch);
    }
    const starts = submitted.slice(1);
    expect(starts.every((c) => c.payload.type === 'set_mining' && c.payload.enabled && c.details?.source === 'default')).toBe(true);
    const devices = starts.flatMap((c) => (c.payload.type === 'set_mining' ? c.payload.deviceIds : []));
    expect(devices.sort()).toEqual(asics().map((d) => d.id));
    // Σ start kW in any window stays under the limit: at most two XPs per window, so two steps.
    // A command's createdAtMs is stamped after the plan's clock, by up to the insert's latency:
    // the window checked here is a little shorter than the plan's.
    expect(starts.length).toBeGreaterThanOrEqual(2);
    for (const s of starts) {
      const inWindow = starts.filter((x) => x.createdAtMs > s.createdAtMs - (WINDOW_MS - 250) && x.createdAtMs <= s.createdAtMs);
      const kw = inWindow.reduce((sum, x) => sum + (x.payload.type === 'set_mining' ? x.payload.deviceIds.length * 3.645 : 0), 0);
      expect(kw).toBeLessThanOrEqual(LIMIT_KW);
    }
    // telemetry saw the site part-way back: some ASICs up while the rest still slept
    expect([...awakeCounts].some((n) => n > 0 && n < 4)).toBe(true);
    // the reconciler's metrics counted what it sent, by rule
    const text = await (await fetch(`http://127.0.0.1:${cp.httpPort}/metrics`, { headers: bearer() })).text();
    expect(text).toMatch(/hcp_reconciler_commands_total\{rule="grid"\} 1/);
    expect(text).toMatch(new RegExp(`hcp_reconciler_commands_total\\{rule="default"\\} ${starts.length}`));
  });
});
