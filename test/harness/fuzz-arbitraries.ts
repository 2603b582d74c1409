// Arbitraries the fuzz suites share: strings, numbers and JSON chosen to break parsers,
// validators, databases and loggers, mixed with the values that reach past the first check
// (ids that exist, numbers in range), so the fuzzers get behind the validation too.
import fc from 'fast-check';
import { FUZZ_ASICS, FUZZ_GPUS, FUZZ_SITE } from './fuzz-target.js';

/** strings known to trip something: NUL, lone surrogates, path and SQL tricks, numbers as text */
export const TRICKY_STRINGS = [
  '', ' ', '+', '#', '%', '%00', '\u0000', 'a\u0000b', '../', '..', '..%2F..%2F', '%2e%2e%2f', '/', '//', '\\', '?', '&', '=',
  "' OR '1'='1", "'; DROP TABLE commands; --", '"', "'", '`', '$(id)', '${x}', '{{x}}', '<script>', '\r\n', '\n', '\t',
  '\uD800', '\uDFFF', 'a\uD83Db', '\uFEFF', '\u202E', '💥', '\u0300', 'Ω', 'ǅ', 'İ', '\u00A0',
  'null', 'undefined', 'true', 'false', 'NaN', 'Infinity', '-Infinity', '-0', '0', '-1', '1e308', '1e309', '4e9', '0x10', '1_000',
  '[]', '{}', '__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty',
  '2026-11-24T00:00:00Z', '+275760-09-13T00:00:00.000Z', '-271821-04-20T00:00:00.000Z', '1970-01-01T00:00:00Z', '9999-12-31T23:59:59Z',
  '0000-01-01T00:00:00Z', '2026-02-30T00:00:00Z', '2026-11-24', '1', '1e3',
  FUZZ_SITE, 'steady-1', 'texas-1', 'atlantis-1', FUZZ_GPUS[0]!, FUZZ_ASICS[0]!, 'cust-001', 'cust-002', 'cust-404',
  'hcp_not-a-real-key-000000000000000000', 'key_0000000000000000',
] as const;

/** one UTF-16 code unit of any value, lone surrogates included */
const anyCodeUnit = fc.integer({ min: 0, max: 0xffff }).map((n) => String.fromCharCode(n));

const trickyShort = [
  { weight: 40, arbitrary: fc.constantFrom(...TRICKY_STRINGS) },
  { weight: 20, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 20, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 10, arbitrary: fc.string({ unit: anyCodeUnit, maxLength: 20 }) },
  { weight: 10, arbitrary: fc.array(fc.constantFrom(...TRICKY_STRINGS), { minLength: 2, maxLength: 6 }).map((xs) => xs.join('')) },
];
const repeated = (lengths: number[]) => fc.tuple(fc.constantFrom(...lengths), fc.constantFrom('a', '\u0000', 'é', '%', '💥')).map(([n, c]) => c.repeat(n));

/** for bodies: long strings past every length cap (128, 255, 500) and, at 10k and 70k, past what any field should hold */
export const trickyString: fc.Arbitrary<string> = fc.oneof(...trickyShort, { weight: 10, arbitrary: repeated([64, 129, 256, 501, 10_000, 70_000]) });

/**
 * for request lines and headers, which Node caps at 16 KiB in all (and percent-encoding triples):
 * long strings are rarer and shorter, and only now and then past the cap (answered 431)
 */
export const trickyLineString: fc.Arbitrary<string> = fc.oneof(...trickyShort, { weight: 6, arbitrary: repeated([64, 129, 256, 501, 1500]) }, { weight: 1, arbitrary: repeated([20_000]) });

/** numbers at and past every boundary: int4/int8/uint32, float extremes, -0, NaN, the infinities */
export const trickyNumber: fc.Arbitrary<number> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      0, -0, 1, -1, 0.5, 59.7, 60, 1e308, -1e308, Number.MAX_VALUE, Number.MIN_VALUE, Number.EPSILON,
      2 ** 31 - 1, 2 ** 31, -(2 ** 31) - 1, 2 ** 32 - 1, 2 ** 32, 4e9, 2 ** 53 - 1, 2 ** 53, 2 ** 63, 2 ** 64, -(2 ** 63),
      NaN, Infinity, -Infinity, 86_400, 86_401, 10_000, 10_001, 1024, 1025, 600, 601,
    ),
  },
  { weight: 2, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.integer({ min: -1000, max: 1000 }) },
  { weight: 2, arbitrary: fc.double() },
);

/** literal JSON number spellings JSON.stringify never writes */
export const TRICKY_NUMBER_TEXT = ['1e308', '1e309', '-1e309', '-0', '4e9', '0.1e-400', '123456789012345678901234567890', '9007199254740993', '1.0', '1E2', '0e0'] as const;

/** a JSON-able leaf: the tricky strings and numbers, booleans, null */
const leaf: fc.Arbitrary<unknown> = fc.oneof(trickyString, trickyNumber, fc.boolean(), fc.constant(null));

/** any JSON value, shallow or nested a few levels, with tricky leaves and keys */
export const trickyJson: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(fc.oneof(trickyString, fc.constantFrom('enabled', 'id', 'site', 'sites', 'all', 'reason', 'device_ids', '__proto__')), tie('value'), { maxKeys: 5 }),
  ),
})).value;

/** JSON texts no serializer would write: deep nesting, huge arrays, bad syntax, duplicate keys */
export const trickyJsonText: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '', ' ', '{', '}', '[', '{"a":', '{"enabled":tru}', "{'enabled':true}", '{"enabled":true,}', 'null', 'true', '0', '"x"', '[]',
    '{"enabled":true}{"enabled":false}', '{"enabled":true,"enabled":"no"}', '{"__proto__":{"enabled":true}}',
    '{"constructor":{"prototype":{"polluted":1}}}', '\uFEFF{}', '{"a":"\\ud800"}', '{"a":"\\u0000"}', '{"a":"\\uZZZZ"}',
    'NaN', 'Infinity', '{"x":NaN}', '{"deadline_s":1e999}', '\u0000', '{"a":1}\u0000',
  ),
  fc.constantFrom(...TRICKY_NUMBER_TEXT).map((n) => `{"deadline_s":${n},"power_target_w":${n},"priority":${n},"mw":${n}}`),
  // deep nesting: a recursive parser or validator (or a logger walking the value) runs out of stack
  fc.constantFrom(100, 5000, 100_000).map((n) => `{"a":${'['.repeat(n)}${']'.repeat(n)}}`),
  fc.constantFrom(1000, 100_000).map((n) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`),
  // huge arrays, under and over the 1 MiB body limit
  fc.constantFrom(20_001, 120_000, 300_000).map((n) => `{"device_ids":[${Array(n).fill('"x"').join(',')}],"sites":[],"windows":[]}`),
);

const KNOWN_IDS = [FUZZ_SITE, 'steady-1', 'texas-1', 'canada-1', ...FUZZ_GPUS, ...FUZZ_ASICS, 'gpu-steady-1-0001', 'nope-1', 'cmd_missing', 'wl-missing'];

/** ids that exist mixed with ids that do not, and with the tricky strings (for bodies) */
export const someId: fc.Arbitrary<string> = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...KNOWN_IDS) }, { weight: 3, arbitrary: trickyString }, { weight: 1, arbitrary: fc.uuid() });

/** the same, sized for a path or a query string */
export const someLineId: fc.Arbitrary<string> = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...KNOWN_IDS) }, { weight: 3, arbitrary: trickyLineString }, { weight: 1, arbitrary: fc.uuid() });

/** random bytes, sometimes long */
export const someBytes: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 4, arbitrary: fc.uint8Array({ maxLength: 64 }) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 1000, maxLength: 5000 }) },
);
