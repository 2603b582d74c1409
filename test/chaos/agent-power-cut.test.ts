// Chaos 4 (issue 12): a power cut of an agent between applying a command and reporting it. On
// restart the agent does not apply that command again; it answers the redelivery from its
// journal, and the command still ends in a final state (none lost).
//
// It holds because the agent journals a command (fsynced, in its state dir) before applying it,
// and answers a command id it has journaled from the journal.
//
// The cut comes at a known point, not a lucky moment: the agent's test hook
// HCP_AGENT_CHAOS_EXIT_AFTER_APPLY=1 makes the process, right after the first command's apply
// resolves and before its result is journaled as final or sent, write one line
// {"msg":"chaos: exit after apply","command":"<id>"} to stdout synchronously and
// kill itself with SIGKILL. A restart without the variable is the machine coming back.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { apiClient } from '../harness/auth.js';
import { startMosquitto, type Mosquitto } from '../harness/mosquitto.js';
import { describePg } from '../harness/pg.js';
import { waitFor } from '../harness/wait-for.js';
import { chaosSites, logged, reportChaos, siteCredential, startAgent, startChaosControlPlane, type AgentHandle, type ControlPlaneHandle } from './harness.js';

const [SITE] = chaosSites(1) as [string];
const FINAL = new Set(['succeeded', 'failed', 'expired']);
const HOOK = 'HCP_AGENT_CHAOS_EXIT_AFTER_APPLY';

interface CommandView { id: string; state: string; type: string; site: string }

describePg('chaos: an agent loses power between applying a command and reporting it', (pg) => {
  let broker: Mosquitto;
  let cp: ControlPlaneHandle;
  let agent: AgentHandle;

  beforeAll(async () => {
    broker = await startMosquitto();
    cp = await startChaosControlPlane({ databaseUrl: pg.url, broker });
    const token = await siteCredential(cp.http, broker, SITE);
    agent = await startAgent({ site: SITE, token, grpc: cp.grpc, broker, gpus: 1, asics: 4, sampleIntervalMs: 500, firstEnv: { [HOOK]: '1' } });
  }, 120_000);

  afterAll(async () => {
    await agent?.close();
    await cp?.kill9();
    await broker?.close();
  });

  it('does not apply the command again after the restart, and the command ends', async () => {
    const api = apiClient(cp.http);
    await waitFor(async () => {
      const s = await api.json<{ online: boolean; asics_online: number }>(`/api/v1/sites/${SITE}`);
      return s.online && s.asics_online === 4;
    }, { timeoutMs: 60_000, intervalMs: 250, message: `${SITE} online with its ASICs` });

    const r = await api.post(`/api/v1/sites/${SITE}/mining`, { enabled: false, duration_s: 3600, reason: 'chaos: power cut' });
    expect([200, 202]).toContain(r.status);
    const first = agent.proc();
    let cutCommand: string | null = null;
    let appliedAgain = 0;
    let lost = 0;
    try {
      // the cut: the hook's line, then the process gone by SIGKILL
      const line = await first.waitForLog((l) => l.msg === 'chaos: exit after apply', `the agent's ${HOOK} hook (exit right after applying a command)`, 30_000).catch((err: Error) => {
        throw new Error(`${err.message}\n(this scenario needs the agent hook ${HOOK}: see this file's header)`);
      });
      cutCommand = String(line.command);
      expect(await first.exited()).toMatchObject({ signal: 'SIGKILL' });

      await agent.start();
      const second = agent.proc();
      // every command of the site ends, the cut one included (redelivered and answered)
      const all = await waitFor(async () => {
        const { commands } = await api.json<{ commands: CommandView[] }>(`/api/v1/commands?site=${SITE}&limit=1000`);
        const cut = commands.find((c) => c.id === cutCommand);
        return cut && commands.every((c) => FINAL.has(c.state)) ? commands : null;
      }, { timeoutMs: 60_000, intervalMs: 500, message: 'every command of the site in a final state' }).catch(async () => {
        const { commands } = await api.json<{ commands: CommandView[] }>(`/api/v1/commands?site=${SITE}&limit=1000`);
        lost = commands.filter((c) => !FINAL.has(c.state)).length;
        throw new Error(`commands not final: ${JSON.stringify(commands.filter((c) => !FINAL.has(c.state)))}`);
      });
      appliedAgain = logged(second, 'command applied', (l) => l.command === cutCommand).length
        + logged(second, 'chaos: exit after apply', (l) => l.command === cutCommand).length;
      // answered from the journal, in whichever final state it records; applied once, before the cut
      expect(FINAL.has(all.find((c) => c.id === cutCommand)!.state)).toBe(true);
      expect(appliedAgain).toBe(0);
    } finally {
      reportChaos('agent-power-cut', {
        rows_expected: 0, rows_present: 0, rows_duplicated: 0, commands_lost: lost, commands_duplicated: appliedAgain, failover_s: null,
        cut_command: cutCommand,
      });
    }
  }, 180_000);
});
