/** The one error a bad setting gives: its message names the variable, never a secret's value. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}
