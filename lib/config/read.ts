/**
 * Reading one setting from the environment, as the settings table
 * (lib/config/settings.ts) describes it: its default, its bounds, its words.
 * Every reader gives one ConfigError naming the variable; a value is echoed
 * only where it cannot be a secret (numbers, flags, words).
 */

import { ConfigError } from './errors';
import { setting, type SettingName, type SettingOfKind } from './settings';

export type Env = Record<string, string | undefined>;

/**
 * An optional variable set to '' counts as unset (deploy templates write '' for
 * "not configured"); required() turns that into an error naming the variable.
 */
export function text(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

export function required(env: Env, name: SettingName, example: string): string {
  const value = text(env, name);
  if (value === undefined) {
    throw new ConfigError(`${name} is ${env[name] === undefined ? 'not set' : 'empty'}; it is required (${example})`);
  }
  return value;
}

/** A text setting, or its default from the table. */
export function textOrDefault(env: Env, name: SettingName): string {
  const value = text(env, name) ?? setting(name).default;
  if (typeof value !== 'string') throw new Error(`setting ${name} has no text default`);
  return value;
}

function wholeNumber(name: string, raw: string, min: number, max: number): number {
  if (!/^\d+$/.test(raw)) throw new ConfigError(`${name} must be a whole number, got "${raw.slice(0, 40)}"`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(`${name} must be between ${min} and ${max}, got ${value}`);
  return value;
}

/** An integer setting within the table's bounds; its default when unset (undefined when it has none). */
export function optionalInteger(env: Env, name: SettingOfKind<'integer'>): number | undefined {
  const { min = 0, max = Number.MAX_SAFE_INTEGER, default: fallback } = setting(name);
  const raw = text(env, name);
  if (raw === undefined) return typeof fallback === 'number' ? fallback : undefined;
  return wholeNumber(name, raw, min, max);
}

export function integer(env: Env, name: SettingOfKind<'integer'>): number {
  const value = optionalInteger(env, name);
  if (value === undefined) throw new Error(`setting ${name} has no numeric default`);
  return value;
}

/** An integer setting that also takes one of its table's words (STATUS_ESTIMATE_ABOVE=off). */
export function integerOrWord(env: Env, name: SettingOfKind<'integer'>): number | string {
  const raw = text(env, name);
  const words = setting(name).words ?? [];
  const word = words.find((w) => w === raw?.toLowerCase());
  if (word !== undefined) return word;
  if (raw !== undefined && !/^\d+$/.test(raw)) {
    throw new ConfigError(`${name} must be a whole number or ${words.map((w) => `"${w}"`).join(' or ')}, got "${raw.slice(0, 40)}"`);
  }
  return integer(env, name);
}

export function flag(env: Env, name: SettingOfKind<'flag'>): boolean {
  const raw = text(env, name)?.toLowerCase();
  if (raw === undefined) return setting(name).default === true;
  if (raw === 'false' || raw === '0') return false;
  if (raw === 'true' || raw === '1') return true;
  throw new ConfigError(`${name} must be true or false, got "${raw.slice(0, 40)}"`);
}

export function choice(env: Env, name: SettingOfKind<'choice'>): string {
  const { values = [], default: fallback } = setting(name);
  const raw = text(env, name) ?? fallback;
  if (typeof raw !== 'string' || !values.includes(raw)) {
    throw new ConfigError(`${name} must be one of ${values.join(', ')}, got "${String(raw).slice(0, 40)}"`);
  }
  return raw;
}

/**
 * A comma-separated list setting: its items trimmed, empty ones dropped, at
 * most the table's `max`, no item twice; [] when unset. Items are echoed: a
 * list setting is never a secret.
 */
export function list(env: Env, name: SettingOfKind<'list'>): string[] {
  const items = (text(env, name) ?? '').split(',').map((item) => item.trim()).filter((item) => item !== '');
  const { max } = setting(name);
  if (max !== undefined && items.length > max) throw new ConfigError(`${name} takes at most ${max} items, got ${items.length}`);
  const twice = items.find((item, index) => items.indexOf(item) !== index);
  if (twice !== undefined) throw new ConfigError(`${name} names ${twice.slice(0, 40)} twice`);
  return items;
}
