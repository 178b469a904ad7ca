/**
 * The README's configuration table, written from the settings table
 * (lib/config/settings.ts), so the two cannot disagree: `npm run docs` rewrites
 * the block between the markers, and test/unit/docs.test.ts fails when the
 * README's block differs from what this writes.
 */

import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { SETTING_NAMES, setting, type Setting, type SettingName } from '../../lib/config/settings';

export const BEGIN = '<!-- settings: written by npm run docs from lib/config/settings.ts -->';
export const END = '<!-- settings: end -->';

function defaultCell(s: Setting): string {
  if (s.defaultText !== undefined) return s.defaultText.startsWith('(') ? s.defaultText : `\`${s.defaultText}\``;
  if (s.default === undefined) return '';
  return `\`${String(s.default)}\``;
}

/** Where a setting is set (the legend above the table says what each word means). */
function whereCell(name: SettingName, s: Setting): string {
  if (s.secret) return `env · SSM \`…/${s.parameter}\``;
  if (s.scope === 'deploy') return 'stage';
  if (s.scope === 'local') return name === 'PUSH_DRY_RUN' ? 'env (local only)' : 'env (`npm start`)';
  return 'env · stage';
}

function readByCell(s: Setting): string {
  if (s.readBy.length > 0) return s.readBy.map((f) => `\`${f}\``).join(', ');
  return s.scope === 'deploy' ? 'the deploy' : '`npm start`';
}

const escape = (text: string) => text.replace(/\|/g, '\\|');

/** Setting names in a summary are set in code type, as everywhere in the docs. */
function codeNames(text: string): string {
  return text.replace(/\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b/g, (name) => ((SETTING_NAMES as string[]).includes(name) ? `\`${name}\`` : name));
}

/** The table, one row per setting, in the settings table's order. */
export function settingsTable(): string {
  const rows = SETTING_NAMES.map((name) => {
    const s = setting(name);
    return `| \`${name}\` | ${defaultCell(s)} | ${whereCell(name, s)} | ${readByCell(s)} | ${codeNames(escape(s.summary))} |`;
  });
  const legend =
    '*Where it is set*: **env**, your environment, for local runs (`npm start`, `npm run collect`); ' +
    '**stage**, deployed: the committed `stages/<stage>.env`, which the deploy environment overrides; ' +
    '**SSM**, deployed: a SecureString parameter `/xyn-metrics/<stage>/…`, read by the function at run time, never in the template. ' +
    '*Read by*: the function that reads it at run time, or the deploy alone.';
  return [BEGIN, legend, '', '| setting | default | where it is set | read by | meaning |', '|---|---|---|---|---|', ...rows, END].join('\n');
}

/** `text` with its block between the markers replaced by the table. */
export function withSettingsTable(text: string): string {
  const start = text.indexOf(BEGIN);
  const end = text.indexOf(END);
  if (start === -1 || end === -1 || end < start) throw new Error(`README.md has no ${BEGIN} … ${END} block`);
  return text.slice(0, start) + settingsTable() + text.slice(end + END.length);
}

/** npm run docs: rewrite the README's block. */
export function writeReadme(root: string): void {
  const file = path.join(root, 'README.md');
  writeFileSync(file, withSettingsTable(readFileSync(file, 'utf8')));
}
