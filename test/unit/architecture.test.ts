/**
 * The map of docs/architecture.md, checked: lib/ in rooms by stage, data
 * flowing one way (each room imports only the rooms before it), no import
 * cycle, lib/ shipping nothing from scripts/ or test/, scripts/ importing
 * nothing from test/, and the scrape function reaching no sink code.
 * Type-only imports are left out: they vanish from the bundle.
 */

import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.join(import.meta.dirname, '..', '..');

function sourceFiles(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .map((f) => path.join(dir, f));
}

/** The files a file imports for their values (not `import type`, not `export type … from`). */
function valueImports(file: string): string[] {
  const source = readFileSync(path.join(ROOT, file), 'utf8');
  const out: string[] = [];
  for (const m of source.matchAll(/^(?:import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?'(\.{1,2}\/[^']+)'/gm)) {
    if (m[1]) continue;
    const resolved = path.normalize(path.join(path.dirname(file), m[2]!));
    out.push(resolved.endsWith('.ts') || resolved.endsWith('.cjs') ? resolved : `${resolved}.ts`);
  }
  return out;
}

const ROOMS = ['core', 'config', 'source', 'metrics', 'sinks', 'runtime'] as const;
type Room = (typeof ROOMS)[number];

/** What each room may import, besides itself (docs/architecture.md, "Rooms"). */
const MAY_IMPORT: Record<Room, readonly string[]> = {
  core: [],
  // The metric table is a leaf: static labels must not be named like a metric's label.
  config: ['core', 'metrics/definitions.ts'],
  source: ['core', 'config'],
  metrics: ['core', 'config', 'source'],
  sinks: ['core', 'config', 'metrics'],
  runtime: ['core', 'config', 'source', 'metrics', 'sinks'],
};

const roomOf = (file: string): Room | undefined => /^lib\/([a-z]+)\//.exec(file)?.[1] as Room | undefined;

const files = [...sourceFiles('lib'), ...sourceFiles('functions'), ...sourceFiles('scripts')];
const graph = new Map(files.map((f) => [f, valueImports(f)]));

describe('architecture', () => {
  it('lib/ is in rooms, and nothing else', () => {
    const loose = sourceFiles('lib').filter((f) => roomOf(f) === undefined || !ROOMS.includes(roomOf(f)!));
    expect(loose).toEqual([]);
  });

  it('each room imports only the rooms before it in the pipeline', () => {
    const wrong: string[] = [];
    for (const [file, imports] of graph) {
      const room = roomOf(file);
      if (!room) continue;
      for (const target of imports) {
        const targetRoom = roomOf(target);
        const ok =
          targetRoom === room ||
          (targetRoom !== undefined && MAY_IMPORT[room].some((allowed) => allowed === targetRoom || target === `lib/${allowed}`));
        if (!ok) wrong.push(`${file} -> ${target}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('lib/ ships nothing from scripts/ or test/; scripts/ imports nothing from test/', () => {
    const wrong = [...graph].flatMap(([file, imports]) =>
      imports.filter((t) => (file.startsWith('lib/') && !t.startsWith('lib/')) || (file.startsWith('scripts/') && t.startsWith('test/'))).map((t) => `${file} -> ${t}`),
    );
    expect(wrong).toEqual([]);
  });

  it('has no import cycle', () => {
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const visit = (file: string, trail: string[]) => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'open') {
        cycles.push([...trail.slice(trail.indexOf(file)), file].join(' -> '));
        return;
      }
      state.set(file, 'open');
      for (const next of graph.get(file) ?? []) visit(next, [...trail, file]);
      state.set(file, 'done');
    };
    for (const file of graph.keys()) visit(file, []);
    expect(cycles).toEqual([]);
  });

  it('the scrape function reaches no sink code (its bundle carries none)', () => {
    const reached = new Set<string>();
    const walk = (file: string) => {
      if (reached.has(file)) return;
      reached.add(file);
      for (const next of graph.get(file) ?? []) walk(next);
    };
    walk('functions/metrics.ts');
    expect([...reached].filter((f) => f.startsWith('lib/sinks/'))).toEqual([]);
    expect(reached.has('lib/runtime/collect.ts')).toBe(true);
  });
});
