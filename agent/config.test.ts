import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseAgentArgs } from './config.js';

const config = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
  const r = parseAgentArgs(argv, env);
  if (!('config' in r)) throw new Error('expected a config');
  return r.config;
};
const problems = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
  try {
    parseAgentArgs(argv, env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
};

describe('agent configuration', () => {
  it('takes flags with defaults for the rest', () => {
    const c = config(['--site', 'texas-1', '--sim-gpus', '10', '--sim-asics', '50']);
    expect(c).toMatchObject({ site: 'texas-1', simGpus: 10, simAsics: 50, controlPlane: '127.0.0.1:50051', mqtt: 'mqtt://127.0.0.1:1883', asicModel: 's21-xp', asicDriver: 'sim' });
  });

  it('keeps its state (spool, journal) by default in data/agents/<site>, one per site; --state-dir or HCP_AGENT_STATE_DIR moves it', () => {
    expect(config(['--site', 'texas-1', '--sim-gpus', '1']).stateDir).toBe(join(process.cwd(), 'data', 'agents', 'texas-1'));
    expect(config(['--site', 'texas-2', '--sim-gpus', '1']).stateDir).toBe(join(process.cwd(), 'data', 'agents', 'texas-2'));
    expect(config(['--site', 'texas-1', '--sim-gpus', '1'], { HCP_AGENT_STATE_DIR: '/var/lib/hcp' }).stateDir).toBe('/var/lib/hcp');
    expect(config(['--site', 'texas-1', '--sim-gpus', '1', '--state-dir', '/srv/a']).stateDir).toBe('/srv/a');
    const c = config(['--site', 'texas-1', '--sim-gpus', '1', '--spool-fsync-ms', '0'], { HCP_AGENT_SPOOL_FSYNC_MS: '250' });
    expect(c).toMatchObject({ spoolFsyncMs: 0, spoolMaxBytes: 50 * 1024 ** 3, spoolSegmentBytes: 8 * 1024 * 1024, resendAfterMs: 15_000, resendWindow: 20 });
    expect(problems(['--site', 'texas-1', '--sim-gpus', '1', '--spool-max-bytes', String(4 * 1024 * 1024), '--spool-segment-bytes', String(4 * 1024 * 1024)])).toEqual(['--spool-max-bytes: must be at least two --spool-segment-bytes']);
  });

  it('takes the broker token from the environment, never from a flag', () => {
    const c = config(['--site', 'texas-1', '--sim-gpus', '1'], { HCP_AGENT_TOKEN: 'hcp_0123456789abcdefghijKLMN' });
    expect(c).toMatchObject({ token: 'hcp_0123456789abcdefghijKLMN' });
    expect(() => parseAgentArgs(['--site', 'texas-1', '--sim-gpus', '1', '--mqtt-token', 'x'])).toThrow(/mqtt-token/);
    expect(() => parseAgentArgs(['--site', 'texas-1', '--sim-gpus', '1', '--token', 'hcp_0123456789abcdefghijKLMN'])).toThrow(/never a flag/);
  });

  it('reads the credential from --token-file, and names the file, never its text, when it is bad', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hcp-agent-'));
    const good = join(dir, 'token');
    writeFileSync(good, 'hcp_0123456789abcdefghijKLMN\n', { mode: 0o600 });
    expect(config(['--site', 'texas-1', '--sim-gpus', '1', '--token-file', good]).token).toBe('hcp_0123456789abcdefghijKLMN');
    const bad = join(dir, 'bad');
    writeFileSync(bad, 'not-a-key-but-secret');
    expect(() => config(['--site', 'texas-1', '--sim-gpus', '1', '--token-file', bad])).toThrow(/does not hold an HCP key/);
    try {
      config(['--site', 'texas-1', '--sim-gpus', '1', '--token-file', bad]);
    } catch (err) {
      expect((err as Error).message).not.toContain('not-a-key-but-secret');
    }
    expect(() => config(['--site', 'texas-1', '--sim-gpus', '1', '--token-file', join(dir, 'missing')])).toThrow(/ENOENT/);
    expect(() => config(['--site', 'texas-1', '--sim-gpus', '1', '--token-file', good], { HCP_AGENT_TOKEN: 'hcp_0123456789abcdefghijKLMN' })).toThrow(/one way/);
  });

  it('layers file < environment < flags', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hcp-agent-'));
    const file = join(dir, 'agent.json');
    writeFileSync(file, JSON.stringify({ site: 'canada-1', simGpus: 1, simAsics: 2, seed: 7 }));
    const c = config(['--config', file, '--sim-asics', '3'], { HCP_AGENT_SIM_GPUS: '5' });
    expect(c).toMatchObject({ site: 'canada-1', simGpus: 5, simAsics: 3, seed: 7 });
  });

  it('reports every problem at once, naming the flag', () => {
    const p = problems(['--site', 'Texas 1', '--sim-gpus=-1', '--mqtt', 'http://x', '--control-plane', 'nohost', '--asic-model', 's9']);
    expect(p.map((x) => x.split(':')[0]).sort()).toEqual(['--asic-model', '--control-plane', '--mqtt', '--sim-gpus', '--site'].sort());
  });

  it('refuses unknown flags, unknown file keys, and an agent with no devices', () => {
    expect(problems(['--site', 'a', '--bogus'])[0]).toMatch(/bogus/);
    const dir = mkdtempSync(join(tmpdir(), 'hcp-agent-'));
    writeFileSync(join(dir, 'c.json'), JSON.stringify({ site: 'a', simGpus: 1, colour: 'red' }));
    expect(problems(['--config', join(dir, 'c.json')])).toEqual(['--config: unknown option "colour"']);
    expect(problems(['--site', 'a'])[0]).toMatch(/no devices/);
    expect(problems(['--site', 'a', '--asic-endpoints', '10.0.0.1:4028'])[0]).toMatch(/--asic-endpoints: needs --asic-driver cgminer/);
  });

  it('answers --help without needing a site', () => {
    expect(parseAgentArgs(['--help'], {})).toEqual({ help: true });
  });
  it('takes several control-plane replicas as host:port,host:port…', () => {
    expect(config(['--site', 'texas-1', '--sim-gpus', '1', '--control-plane', '10.0.0.1:50051,10.0.0.2:50051']).controlPlane).toBe('10.0.0.1:50051,10.0.0.2:50051');
    expect(problems(['--site', 'texas-1', '--sim-gpus', '1', '--control-plane', '10.0.0.1:50051,nohost']).map((x) => x.split(':')[0])).toEqual(['--control-plane']);
  });
});
