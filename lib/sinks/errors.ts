/** The one error a sink's send gives: which sink, the status of its last answer, how many attempts. */

export type SinkName = 'pushgateway' | 'remote_write';

export class SinkError extends Error {
  override name = 'SinkError';
  readonly sink: SinkName;
  /** The peer's answer to the last attempt, when it answered (401/403: credentials refused). */
  readonly status: number | undefined;
  readonly attempts: number;
  constructor(sink: SinkName, message: string, { status, attempts }: { status: number | undefined; attempts: number }) {
    super(message);
    this.sink = sink;
    this.status = status;
    this.attempts = attempts;
  }
}
