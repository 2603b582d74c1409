// Whether a file needing an extension runs, from what the server says (migrate.ts): TimescaleDB
// installed but not in shared_preload_libraries is caught before CREATE EXTENSION ends the
// session, and the warning names the line to add. The server side is in
// test/db-terminate.int.test.ts.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { DbUnavailableError, isDbUnavailable, isTypeFetchRejection } from './db-error.js';
import { extensionReadiness, isNotPreloaded, preloadHint, preloadList } from './migrate.js';

describe('extensionReadiness', () => {
  it.each([
    ['not installed', 'timescaledb', false, 'timescaledb', 'unavailable'],
    ['installed and preloaded', 'timescaledb', true, 'timescaledb', 'ready'],
    ['preloaded among others, quoted, spaced', 'timescaledb', true, 'pg_stat_statements, "timescaledb"', 'ready'],
    ['preloaded by path', 'timescaledb', true, '$libdir/timescaledb.so', 'ready'],
    ['installed, preload list empty', 'timescaledb', true, '', 'not_preloaded'],
    ['installed, only another library preloaded', 'timescaledb', true, 'pg_stat_statements', 'not_preloaded'],
    ['a name that only starts the same', 'timescaledb', true, 'timescaledb_toolkit', 'not_preloaded'],
    ['installed, the setting unreadable by this role', 'timescaledb', true, null, 'unknown'],
    ['an extension that needs no preload', 'pgcrypto', true, '', 'ready'],
  ] as const)('%s', (_what, name, available, preload, want) => {
    expect(extensionReadiness(name, available, preload)).toBe(want);
  });

  it('is never ready for timescaledb unless the list names it', () => {
    fc.assert(
      fc.property(fc.array(fc.stringMatching(/^[a-z_]{1,12}$/)), fc.boolean(), (libs, available) => {
        const r = extensionReadiness('timescaledb', available, libs.join(','));
        if (!available) return r === 'unavailable';
        return r === (libs.includes('timescaledb') ? 'ready' : 'not_preloaded');
      }),
    );
  });
});

describe('preload hint', () => {
  it('names the missing line, keeping the libraries already there', () => {
    expect(preloadHint('timescaledb', '')).toBe("shared_preload_libraries = 'timescaledb'");
    expect(preloadHint('timescaledb', 'pg_stat_statements')).toBe("shared_preload_libraries = 'pg_stat_statements,timescaledb'");
    expect(preloadHint('timescaledb', null)).toBe("shared_preload_libraries = 'timescaledb'");
    expect(preloadList(' a , "b" ,, $libdir/c.so')).toEqual(['a', 'b', 'c']);
  });

  it("knows the server's FATAL", () => {
    const fatal = Object.assign(new Error('extension "timescaledb" must be preloaded'), { code: '0A000', severity: 'FATAL' });
    expect(isNotPreloaded(fatal)).toBe(true);
    expect(isNotPreloaded(new Error('relation "x" does not exist'))).toBe(false);
  });
});

describe('isDbUnavailable', () => {
  const pgError = (code: string, severity = 'FATAL') => Object.assign(new Error(code), { code, severity });
  it.each([
    ['refused', Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), true],
    ['closed by the driver', Object.assign(new Error('write CONNECTION_CLOSED'), { code: 'CONNECTION_CLOSED' }), true],
    ['connect timeout', Object.assign(new Error('write CONNECT_TIMEOUT'), { code: 'CONNECT_TIMEOUT' }), true],
    ['the open circuit', new DbUnavailableError(Date.now()), true],
    ['terminated (57P01)', pgError('57P01'), true],
    ['starting up / shutting down (57P03)', pgError('57P03'), true],
    ['connection exception (08006)', pgError('08006'), true],
    ['too many connections', pgError('53300'), true],
    ['a unique violation', pgError('23505', 'ERROR'), false],
    ['a statement timeout', pgError('57014', 'ERROR'), false],
    ['an undefined table', pgError('42P01', 'ERROR'), false],
    ['an errno-like code without severity that is not a connection fault', Object.assign(new Error('x'), { code: 'EPERM' }), false],
    ['a programming error', new TypeError('x is not a function'), false],
  ])('%s', (_what, err, want) => {
    expect(isDbUnavailable(err)).toBe(want);
  });
});

describe('isTypeFetchRejection', () => {
  // postgres.js tags a failed statement's error with its text (src/connection.js queryError)
  const closed = (query: string) => Object.defineProperty(Object.assign(new Error('write CONNECTION_CLOSED'), { code: 'CONNECTION_CLOSED' }), 'query', { value: query });
  const typeQuery = `
      select b.oid, b.typarray
      from pg_catalog.pg_type a
      left join pg_catalog.pg_type b on b.oid = a.typelem
      where a.typcategory = 'A'
      group by b.oid, b.typarray
      order by b.oid
    `;
  it("is the driver's own type query ended by a lost connection", () => {
    expect(isTypeFetchRejection(closed(typeQuery))).toBe(true);
  });
  it('is nothing else: another statement, another error, not an error', () => {
    expect(isTypeFetchRejection(closed('select 1'))).toBe(false);
    expect(isTypeFetchRejection(Object.defineProperty(Object.assign(new Error('x'), { code: '42P01', severity: 'ERROR' }), 'query', { value: typeQuery }))).toBe(false);
    expect(isTypeFetchRejection(new TypeError("Cannot read properties of null (reading 'write')"))).toBe(false);
    expect(isTypeFetchRejection(undefined)).toBe(false);
  });
});
