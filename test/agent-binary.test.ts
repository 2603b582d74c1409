// dist/hcp-agent, the single-executable agent (scripts/build-agent.ts), built by globalSetup
// when older than the agent's sources, run with an empty environment (no Node on PATH), as on a site.
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { AGENT_BINARY as BINARY, agentBinaryIsCurrent } from './harness/agent-binary.js';
import { ROOT, startBinary, type Proc } from './harness/processes.js';

function run(args: string[]) {
  const r = spawnSync(BINARY, args, { cwd: ROOT, env: {}, encoding: 'utf8', timeout: 15_000 });
  if (r.error) throw r.error;
  return r;
}

describe('hcp-agent single executable', () => {
  it('is built from the current sources (globalSetup builds it)', () => {
    expect(agentBinaryIsCurrent()).toBe(true);
  });

  it('prints the usage and exits 0 with an empty environment', () => {
    const r = run(['--help']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('Usage: hcp-agent --site <id>');
    expect(r.stdout).toContain('--control-plane');
    expect(r.status).toBe(0);
  });

  it('rejects a bad configuration, naming the problem, with a non-zero exit', () => {
    const r = run(['--site', 'Bad Site']);
    // 2, which the systemd unit does not restart on (RestartPreventExitStatus=2)
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/--site: must be lowercase/);
  });

  describe('with nothing to connect to', () => {
    let agent: Proc | undefined;
    afterAll(async () => {
      await agent?.kill('SIGKILL');
    });

    it('runs, retries both connections, and exits 0 on SIGTERM', async () => {
      agent = startBinary('hcp-agent', BINARY, [
        '--site', 'texas-1', '--sim-gpus', '2', '--sim-asics', '2',
        '--control-plane', '127.0.0.1:1', '--mqtt', 'mqtt://127.0.0.1:1',
      ], { PATH: '' });
      // both clients loaded and running inside the binary (lazy requires included)
      await agent.waitForLog((l) => l.component === 'grpc' && l.level === 40, 'gRPC retry', 10_000);
      await agent.waitForLog((l) => l.component === 'mqtt' && l.level === 40, 'MQTT retry', 10_000);
      expect(agent.lines.filter((l) => 'raw' in l)).toEqual([]);
      const t0 = Date.now();
      const { code } = await agent.kill('SIGTERM');
      expect(code).toBe(0);
      expect(Date.now() - t0).toBeLessThan(5_000);
    });
  });
});
