import { describe, expect, it } from 'vitest';
import { suffixString } from './cgminer-commands.js';
import { handleCgminerRequest } from './cgminer-protocol.js';
import { createRng } from './rng.js';
import { createS21 } from './s21.js';

const m = createS21({ id: 'asic-t-00001', model: 's21-xp', rng: createRng(1).fork('asic-t-00001') });
for (let i = 0; i < 120; i++) m.step(1);
const NOW = 1_750_277_143;

function json(raw: string): Record<string, any> {
  const reply = handleCgminerRequest(raw, m, NOW);
  expect(reply.endsWith('\0')).toBe(true);
  expect(reply.indexOf('\0')).toBe(reply.length - 1);
  return JSON.parse(reply.slice(0, -1));
}

describe('cgminer protocol: single commands', () => {
  it.each([
    ['version', 22, 'CGMiner versions', 'VERSION'],
    ['summary', 11, 'Summary', 'SUMMARY'],
    ['pools', 7, '1 Pool(s)', 'POOLS'],
    ['devs', 9, '1 ASC(s)', 'DEVS'],
    ['stats', 70, 'CGMiner stats', 'STATS'],
    ['config', 33, 'CGMiner config', 'CONFIG'],
  ])('%s → code %i', (cmd, code, msg, section) => {
    const r = json(JSON.stringify({ command: cmd }));
    expect(r.STATUS).toEqual([{ STATUS: 'S', When: NOW, Code: code, Msg: msg, Description: 'bmminer 1.0.0' }]);
    expect(Array.isArray(r[section])).toBe(true);
    expect(r.id).toBe(1);
  });

  it('summary carries the reference fields with numeric values', () => {
    const s = json('{"command":"summary"}').SUMMARY[0];
    for (const k of ['Elapsed', 'GHS 5s', 'GHS av', 'GHS 30m', 'Accepted', 'Rejected', 'Hardware Errors', 'Utility', 'Best Share']) {
      expect(typeof s[k], k).toBe('number');
    }
    expect(s.Elapsed).toBe(120);
    expect(s['GHS 5s']).toBeGreaterThan(260_000);
    expect(s.Accepted).toBe(m.cgminerStatus().accepted);
  });

  it('stats: STATS[0] header, STATS[1] data with dashed temps, chain fields, GH rate unit', () => {
    const st = json('{"command":"stats","parameter":"0"}').STATS;
    expect(st).toHaveLength(2);
    expect(st[0]).toMatchObject({ BMMiner: '1.0.0', Type: 'Antminer S21 XP' });
    expect(Object.keys(st[0]).sort()).toEqual(['BMMiner', 'CompileTime', 'Miner', 'Type']);
    const d = st[1];
    expect(d.fan_num).toBe(4);
    expect(d.temp_num).toBe(3);
    for (const i of [1, 2, 3]) {
      expect(d[`temp_pcb${i}`]).toMatch(/^-?\d+(?:--?\d+){3}$/);
      expect(d[`temp_chip${i}`]).toMatch(/^-?\d+(?:--?\d+){3}$/);
      expect(d[`chain_acn${i}`]).toBe(91);
      expect(typeof d[`chain_rate${i}`]).toBe('string');
      expect(typeof d[`chain_hw${i}`]).toBe('number');
    }
    for (const i of [1, 2, 3, 4]) expect(d[`fan${i}`]).toBeGreaterThan(0);
    expect(d.rate_unit).toBe('GH');
    expect(d.total_rateideal).toBe(270_000);
    expect(d.miner_id).toBe(m.minerId);
    expect(d.Mode).toBe(0);
    expect(d).not.toHaveProperty('total_power'); // stock bmminer does not report power
  });

  it('pools reports the pool URL, user and the difficulty as cgminer suffix string', () => {
    const p = json('{"command":"pools"}').POOLS[0];
    expect(p).toMatchObject({ POOL: 0, URL: 'stratum+tcp://pool.example:3333', User: 'hcp.asic-t-00001', Diff: '262K', 'Stratum Active': true });
    expect(suffixString(262_144)).toBe('262K');
    expect(suffixString(512)).toBe('512');
    expect(suffixString(4_300_000)).toBe('4M');
  });

  it('privileged commands → 45, unknown → 14, invalid JSON → 23, missing command → 14', () => {
    for (const cmd of ['restart', 'ascset', 'switchpool', 'quit']) {
      const st = json(JSON.stringify({ command: cmd, parameter: '0' })).STATUS[0];
      expect(st).toMatchObject({ STATUS: 'E', Code: 45, Msg: `Access denied to '${cmd}' command` });
    }
    expect(json('{"command":"frobnicate"}').STATUS[0]).toMatchObject({ STATUS: 'E', Code: 14, Msg: 'Invalid command' });
    expect(json('{"command":').STATUS[0]).toMatchObject({ STATUS: 'E', Code: 23, Msg: 'Invalid JSON' });
    expect(json('{"cmd":"summary"}').STATUS[0]).toMatchObject({ Code: 14 });
    expect(json('{"command":"summary"}\0\n').STATUS[0].Code).toBe(11); // trailing NUL/newline tolerated
  });
});

describe('cgminer protocol: joined commands', () => {
  it('one section per command, each a one-element array with its own STATUS', () => {
    const r = json('{"command":"summary+devs"}');
    expect(Object.keys(r).sort()).toEqual(['devs', 'id', 'summary']);
    expect(r.summary).toHaveLength(1);
    expect(r.summary[0].STATUS[0].Code).toBe(11);
    expect(r.summary[0].SUMMARY).toHaveLength(1);
    expect(r.devs[0].STATUS[0].Code).toBe(9);
    expect(r.devs[0].DEVS[0].Name).toBe('BTM_SOC');
  });

  it('a command that cannot be joined gets code 45 in its own section; others still answer', () => {
    const r = json('{"command":"stats+restart+summary"}');
    expect(r.restart).toEqual([{ STATUS: [expect.objectContaining({ STATUS: 'E', Code: 45 })], id: 1 }]);
    expect(r.stats[0].STATUS[0].Code).toBe(70);
    expect(r.summary[0].STATUS[0].Code).toBe(11);
  });

  it('all sections are built from one snapshot (consistent numbers)', () => {
    const r = json('{"command":"stats+summary"}');
    expect(r.stats[0].STATS[1]['GHS 5s']).toBe(r.summary[0].SUMMARY[0]['GHS 5s']);
  });
});

describe('cgminer protocol: text form', () => {
  it('summary| gets a text reply ending in NUL', () => {
    const reply = handleCgminerRequest('summary|', m, NOW);
    expect(reply.endsWith('|\0')).toBe(true);
    const [status, summary] = reply.slice(0, -1).split('|');
    expect(status).toBe(`STATUS=S,When=${NOW},Code=11,Msg=Summary,Description=bmminer 1.0.0`);
    expect(summary).toMatch(/^SUMMARY,Elapsed=120,GHS 5s=\d+(\.\d+)?,GHS av=/);
  });

  it('indexed items start with their index key; unknown text commands get 14', () => {
    expect(handleCgminerRequest('devs|', m, NOW)).toContain('|ASC=0,Name=BTM_SOC,');
    expect(handleCgminerRequest('stats|', m, NOW)).toMatch(/\|STATS=0,ID=BTM_SOC0,/);
    expect(handleCgminerRequest('pools|', m, NOW)).toContain('URL=stratum+tcp://pool.example:3333');
    expect(handleCgminerRequest('garbage', m, NOW)).toBe(`STATUS=E,When=${NOW},Code=14,Msg=Invalid command,Description=bmminer 1.0.0|\0`);
    expect(handleCgminerRequest('restart|', m, NOW)).toContain('Code=45');
  });
});
