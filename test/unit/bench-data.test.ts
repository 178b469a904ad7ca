import { describe, expect, it } from 'vitest';
import { fillRunsSql, parseShape, parseSizeSpec } from '../../scripts/bench/data';

describe('bench data shapes', () => {
  it('names a spread dataset apart from the newest one of the same size, with the same active queue', () => {
    const newest = parseSizeSpec('10m@1m');
    const spread = parseSizeSpec('10m@1m', 'bench', 'spread');
    expect(newest).toMatchObject({ schema: 'bench_10m_q1m', label: '10m@1m', shape: 'newest', queued: 10_000, running: 1_000 });
    expect(spread).toMatchObject({ schema: 'bench_10m_q1m_spread', label: '10m@1m', shape: 'spread', queued: 10_000, running: 1_000 });
  });

  it('draws the active runs from the newest ids, or from the whole history with their own old queued_at', () => {
    const rows = 1_000_000;
    // newest: a window of ten times the active runs at the tail of the ids.
    const newest = fillRunsSql(parseSizeSpec('1m'));
    expect(newest).toContain(`s.i > ${rows - 110_000} AND`);
    expect(newest).toContain("WHEN 'QUEUED' THEN g.t0 - g.w * interval '6 hours' - interval '1 minute' ELSE g.queued_at END");
    // spread: every id may be active, queued when its neighbours were.
    const spread = fillRunsSql(parseSizeSpec('1m', 'bench', 'spread'));
    expect(spread).toContain('s.i > 0 AND');
    expect(spread).toContain("WHEN 'QUEUED' THEN g.queued_at ELSE g.queued_at END");
  });

  it('refuses a shape it does not know, naming the ones it does', () => {
    expect(parseShape(' Spread ')).toBe('spread');
    expect(() => parseShape('oldest')).toThrow(/not a data shape: "oldest" \(expected newest or spread\)/);
  });
});
