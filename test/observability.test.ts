// Prometheus and Grafana (docs/observability.md), checked with the real tools: promtool on the
// config, the alert rules and their unit tests, and on real scrapes of a running control plane
// (on PostgreSQL) and a running agent (the single executable, connected to it); every Grafana
// dashboard's queries name only metrics those scrapes or the rules have; `docker-compose config`
// accepts the compose file when docker-compose is installed (.ci/run installs it).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_BINARY } from './harness/agent-binary.js';
import { makeKey } from './harness/auth.js';
import { describePg } from './harness/pg.js';
import { ROOT, startBinary, startControlPlaneProcess, type Proc } from './harness/processes.js';
import { waitFor } from './harness/wait-for.js';

const PROM = join(ROOT, 'deploy/prometheus');
const DASHBOARDS = join(ROOT, 'deploy/grafana/dashboards');

function promtool(args: string[], input?: string) {
  const r = spawnSync('promtool', args, { cwd: ROOT, input, encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw new Error(`promtool: ${r.error.message} (Debian: apt-get install --no-install-recommends prometheus; .ci/run installs it)`);
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/**
 * promtool check metrics findings that are not ours to fix: dcgm-exporter's own label names
 * (modelName) and its energy counter without _total, kept so DCGM dashboards work unchanged.
 * Anything else is a finding.
 */
const KNOWN_LINT = [
  /^DCGM_FI_DEV_[A-Z_]+ label names should be written in 'snake_case' not 'camelCase'$/,
  /^DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter metrics should have "_total" suffix$/,
];

function lint(scrape: string): string[] {
  const r = promtool(['check', 'metrics'], scrape);
  const findings = r.out.split('\n').map((l) => l.trim()).filter(Boolean);
  // an error (not a lint) exits 1 with a parse message, which no KNOWN_LINT matches
  return findings.filter((f) => !KNOWN_LINT.some((k) => k.test(f)));
}

/** metric names in a scrape (samples, so a family listed with no series does not count) */
function namesIn(scrape: string): Set<string> {
  const names = new Set<string>();
  for (const line of scrape.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/.exec(line);
    if (m) names.add(m[1]!);
  }
  return names;
}

const PROMQL_WORDS = new Set([
  'sum', 'avg', 'min', 'max', 'count', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless',
  'rate', 'irate', 'increase', 'delta', 'histogram_quantile', 'time', 'vector', 'label_values', 'topk', 'bottomk', 'abs',
  'clamp_min', 'clamp_max', 'offset', 'bool', 'le', 'quantile', 'stddev', 'avg_over_time', 'max_over_time', 'min_over_time',
]);

/** the metric names a PromQL expression reads: label matchers, strings, durations and grouping taken out */
export function metricNamesOf(expr: string): string[] {
  const bare = expr
    // Grafana's label_values(metric, label): the second argument is a label
    .replace(/label_values\(([^,]*),\s*\w+\)/g, '($1)')
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\[[^\]]*\]/g, '')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '');
  const out = new Set<string>();
  for (const m of bare.matchAll(/(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w(])/g)) {
    const n = m[1]!;
    if (!PROMQL_WORDS.has(n) && !/^\d/.test(n)) out.add(n);
  }
  return [...out];
}

interface Dashboard { uid: string; title: string; panels: Array<{ title: string; targets?: Array<{ expr: string }> }>; templating?: { list: Array<{ name: string; query?: { query: string } }> } }
const dashboards = (): Array<[string, Dashboard]> =>
  readdirSync(DASHBOARDS).filter((f) => f.endsWith('.json')).map((f) => [f, JSON.parse(readFileSync(join(DASHBOARDS, f), 'utf8')) as Dashboard]);

describe('prometheus config and alert rules (promtool)', () => {
  it('promtool check config accepts deploy/prometheus/prometheus.yml (and the rule files it names)', () => {
    const r = promtool(['check', 'config', join(PROM, 'prometheus.yml')]);
    expect(r.out).toContain('SUCCESS: 1 rule files found');
    expect(r.code, r.out).toBe(0);
  });

  it('promtool check rules accepts every rule file; each alert has for, a severity and both annotations', () => {
    const files = readdirSync(join(PROM, 'rules')).filter((f) => f.endsWith('.yml')).map((f) => join(PROM, 'rules', f));
    expect(files.length).toBeGreaterThan(0);
    const r = promtool(['check', 'rules', ...files]);
    expect(r.code, r.out).toBe(0);
    const text = files.map((f) => readFileSync(f, 'utf8')).join('\n');
    const alerts = text.split(/\n\s*- alert: /).slice(1);
    for (const name of ['HcpSiteOffline', 'HcpIngestLag', 'HcpIngestStale', 'HcpGridTripFired', 'HcpCommandsFailing', 'HcpCommandsExpiring', 'HcpDivergentDevices']) {
      expect(alerts.some((a) => a.startsWith(`${name}\n`)), name).toBe(true);
    }
    for (const a of alerts) {
      const name = a.split('\n')[0];
      expect(a, name).toMatch(/\n\s+for: \d+[smh]\n/);
      expect(a, name).toMatch(/\n\s+severity: (critical|warning|info)\n/);
      expect(a, name).toMatch(/\n\s+summary: /);
      expect(a, name).toMatch(/\n\s+description: /);
    }
  });

  it('promtool test rules: site offline, trip fired, commands expiring, ingest stale, divergent devices', () => {
    const tests = readdirSync(join(PROM, 'tests')).filter((f) => f.endsWith('.yml')).map((f) => join(PROM, 'tests', f));
    const r = promtool(['test', 'rules', ...tests]);
    expect(r.out).toContain('SUCCESS');
    expect(r.code, r.out).toBe(0);
  });

  it('the metric-name extractor used on the dashboards finds names and only names', () => {
    expect(metricNamesOf('sum by (site) (rate(cgminer_shares_accepted_total{site="$site",x=~"a|b"}[5m])) / 1000')).toEqual(['cgminer_shares_accepted_total']);
    expect(metricNamesOf('histogram_quantile(0.95, sum by (le) (rate(hcp_ingest_lag_seconds_bucket[5m])))')).toEqual(['hcp_ingest_lag_seconds_bucket']);
    expect(metricNamesOf('time() - hcp_ingest_newest_sample_timestamp_seconds')).toEqual(['hcp_ingest_newest_sample_timestamp_seconds']);
    expect(metricNamesOf('count(cgminer_up{site="$site"} == 0) or vector(0)')).toEqual(['cgminer_up']);
    expect(metricNamesOf('label_values(up{job="hcp-agent"}, site)')).toEqual(['up']);
    expect(metricNamesOf('sum(cgminer_power_watt{site="$site"}) / 1000')).toEqual(['cgminer_power_watt']);
  });
});

describePg('real scrapes: a control plane and an agent (promtool check metrics, dashboards)', (pg) => {
  let cp: { proc: Proc; http: string; grpc: string; mqtt: string };
  let agent: Proc;
  let agentUrl = '';
  let cpScrape = '';
  let agentScrape = '';
  const stateDir = mkdtempSync(join(tmpdir(), 'hcp-obs-agent-'));

  beforeAll(async () => {
    cp = await startControlPlaneProcess(pg.url);
    const token = await makeKey(cp.http, { role: 'agent', site: 'texas-1' });
    agent = startBinary('hcp-agent', AGENT_BINARY, [
      '--site', 'texas-1', '--control-plane', cp.grpc, '--mqtt', cp.mqtt, '--sim-gpus', '3', '--sim-asics', '4',
      '--sample-interval-ms', '500', '--http-port', '0', '--state-dir', stateDir,
    ], { HCP_AGENT_TOKEN: token, PATH: '' });
    const started = await agent.waitForLog((l) => l.msg === 'agent started', 'agent started', 20_000);
    agentUrl = `${started.http as string}/metrics`;
    // both sides running for real: the agent's readings and the control plane's ingest counted
    agentScrape = await waitFor(async () => {
      const t = await (await fetch(agentUrl)).text();
      return /^hcp_agent_control_plane_connected 1$/m.test(t) && /^DCGM_FI_DEV_GPU_UTIL\{/m.test(t) ? t : null;
    }, { timeoutMs: 30_000, message: 'agent /metrics with device readings, connected' });
    cpScrape = await waitFor(async () => {
      const t = await (await fetch(`${cp.http}/metrics`)).text();
      return /^hcp_ingest_samples_total\{kind="asic"\} [1-9]/m.test(t) ? t : null;
    }, { timeoutMs: 30_000, message: 'control plane /metrics counting ingested samples' });
  });

  afterAll(async () => {
    await agent?.kill('SIGKILL');
    await cp?.proc.kill('SIGTERM');
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('promtool check metrics is clean on the control plane\'s /metrics', () => {
    expect(lint(cpScrape)).toEqual([]);
  });

  it('promtool check metrics is clean on the agent\'s /metrics, beyond dcgm-exporter\'s own naming', () => {
    expect(lint(agentScrape)).toEqual([]);
    // and the lint did run on the DCGM families: its known findings are there
    expect(promtool(['check', 'metrics'], agentScrape).out).toContain('DCGM_FI_DEV_GPU_UTIL label names');
  });

  it('the agent serves each GPU under dcgm-exporter names and labels, and each ASIC cgminer-exporter style', () => {
    const gpuLines = agentScrape.split('\n').filter((l) => l.startsWith('DCGM_FI_DEV_GPU_UTIL{'));
    expect(gpuLines).toHaveLength(3);
    for (const [i, l] of gpuLines.entries()) {
      expect(l).toMatch(new RegExp(`^DCGM_FI_DEV_GPU_UTIL\\{gpu="${i}",UUID="GPU-[0-9a-f-]+",device="nvidia${i}",modelName="NVIDIA [^"]+",Hostname="[^"]+",hcp_device="gpu-texas-1-000${i + 1}"\\} [0-9.]+$`));
    }
    for (const n of ['DCGM_FI_DEV_POWER_USAGE', 'DCGM_FI_DEV_GPU_TEMP', 'DCGM_FI_DEV_MEMORY_TEMP', 'DCGM_FI_DEV_FB_USED', 'DCGM_FI_DEV_FB_FREE', 'DCGM_FI_DEV_SM_CLOCK', 'DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION', 'DCGM_FI_DEV_XID_ERRORS']) {
      expect(agentScrape.split('\n').filter((l) => l.startsWith(`${n}{`)), n).toHaveLength(3);
    }
    // an H100 80GB: used + free = its 81,559 MiB
    const v = (n: string, gpu: string) => Number(new RegExp(`^${n}\\{gpu="${gpu}"[^}]*\\} (\\S+)$`, 'm').exec(agentScrape)![1]);
    expect(v('DCGM_FI_DEV_FB_USED', '0') + v('DCGM_FI_DEV_FB_FREE', '0')).toBe(81_559);
    expect(v('DCGM_FI_DEV_POWER_USAGE', '0')).toBeGreaterThan(0);
    const hash = agentScrape.split('\n').filter((l) => l.startsWith('cgminer_hashrate_ghs{'));
    expect(hash).toHaveLength(8);
    expect(hash[0]).toMatch(/^cgminer_hashrate_ghs\{miner="asic-texas-1-00001",model="[^"]+",window="5s"\} [0-9.]+$/);
    for (const n of ['cgminer_up', 'cgminer_mining', 'cgminer_power_watts', 'cgminer_power_target_watts', 'cgminer_shares_accepted_total', 'cgminer_shares_rejected_total', 'cgminer_hardware_errors_total']) {
      expect(agentScrape.split('\n').filter((l) => l.startsWith(`${n}{`)), n).toHaveLength(4);
    }
    expect(agentScrape).toMatch(/^cgminer_temperature_celsius\{miner="asic-texas-1-00004",model="[^"]+",board="0",sensor="chip"\} [0-9.]+$/m);
    expect(agentScrape).toMatch(/^cgminer_fan_speed_rpm\{miner="asic-texas-1-00004",model="[^"]+",fan="1"\} [0-9.]+$/m);
    const states = agentScrape.split('\n').filter((l) => l.startsWith('hcp_agent_asics{')).map((l) => Number(l.split(' ')[1]));
    expect(states).toHaveLength(5);
    expect(states.reduce((a, b) => a + b, 0)).toBe(4);
  });

  it('every Grafana dashboard query names only metrics the real scrapes have', () => {
    const known = new Set([...namesIn(cpScrape), ...namesIn(agentScrape), 'up']);
    // counters that exist once something happened (a trip, a failed command…): named in the
    // scrape's # TYPE lines even before their first series, or declared by prom-client with labels
    for (const m of `${cpScrape}\n${agentScrape}`.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      const [name, type] = [m[1]!, m[2]!];
      if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) known.add(name + s);
      else known.add(name);
    }
    const list = dashboards();
    expect(list.map(([f]) => f).sort()).toEqual(['commands.json', 'economics.json', 'fleet.json', 'ingest.json', 'scheduler.json', 'site.json']);
    const unknown: string[] = [];
    let exprs = 0;
    for (const [file, d] of list) {
      expect(d.uid, file).toMatch(/^hcp-/);
      for (const p of d.panels) {
        expect(p.targets?.length, `${file}: ${p.title}`).toBeGreaterThan(0);
        for (const t of p.targets ?? []) {
          exprs++;
          for (const n of metricNamesOf(t.expr)) if (!known.has(n)) unknown.push(`${file}: ${p.title}: ${n}`);
        }
      }
      for (const v of d.templating?.list ?? []) for (const n of metricNamesOf(v.query?.query ?? '')) if (!known.has(n)) unknown.push(`${file}: $${v.name}: ${n}`);
    }
    expect(exprs).toBeGreaterThan(30);
    expect(unknown).toEqual([]);
  });

  it('every alert rule names only metrics the real scrapes have', () => {
    const known = new Set([...namesIn(cpScrape), ...namesIn(agentScrape), 'up']);
    for (const m of `${cpScrape}\n${agentScrape}`.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      known.add(m[2] === 'histogram' ? `${m[1]}_bucket` : m[1]!);
    }
    const rules = readFileSync(join(PROM, 'rules/hcp.yml'), 'utf8');
    const exprs = [...rules.matchAll(/^\s+expr: (.+)$/gm)].map((m) => m[1]!);
    expect(exprs.length).toBeGreaterThanOrEqual(7);
    const unknown = exprs.flatMap((e) => metricNamesOf(e).filter((n) => !known.has(n)));
    expect(unknown).toEqual([]);
  });
});

describe('docker-compose.yml', () => {
  // Debian's docker-compose (v1, python) parses and validates the file with no Docker engine
  it('docker-compose config accepts it, with Prometheus and Grafana wired to the repo\'s files', () => {
    const r = spawnSync('docker-compose', ['-f', 'docker-compose.yml', 'config'], {
      cwd: ROOT, encoding: 'utf8', timeout: 60_000,
      env: { ...process.env, HCP_ADMIN_KEY: `hcp_${'0'.repeat(64)}`, GRAFANA_ADMIN_PASSWORD: 'test-password' },
    });
    if (r.error) throw new Error(`docker-compose: ${r.error.message} (Debian: apt-get install docker-compose; .ci/run installs it)`);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('prom/prometheus');
    expect(r.stdout).toContain('grafana/grafana');
    expect(r.stdout).toMatch(/deploy\/prometheus:\/etc\/prometheus:ro/);
    expect(r.stdout).toMatch(/deploy\/grafana\/dashboards:\/var\/lib\/grafana\/dashboards:ro/);
    expect(r.stdout).toContain('test-password');
  });

  it('the files compose mounts exist', () => {
    for (const p of ['deploy/prometheus/prometheus.yml', 'deploy/grafana/provisioning/datasources/prometheus.yml', 'deploy/grafana/provisioning/dashboards/hcp.yml']) {
      expect(existsSync(join(ROOT, p)), p).toBe(true);
    }
  });
});
