// Sends an outbox's records in seq order over a link that acknowledges each one (MQTT QoS 1), with a
// bounded number in flight, while the link is up.
//
// Invariants: records leave in seq order; a record is acknowledged in the outbox only after the broker's
// PUBACK. A publish in flight when the connection drops stays in the MQTT client's outgoing store and is
// re-sent, in order, before anything newer when the client reconnects (mqtt.js delivers its store first),
// so the pump keeps its position across reconnects. A publish that fails outright (the client was closed)
// rewinds the pump to that record; the manager drops the duplicates this may cause.
import type { Outbox } from './outbox.js';

export interface OutboxPumpOptions {
  outbox: Outbox;
  /** Resolves on the broker's acknowledgement. */
  publish: (payload: string) => Promise<void>;
  /** Most publishes awaiting acknowledgement. Default 16. */
  window?: number;
  log?: (line: string) => void;
}

export class OutboxPump {
  private nextToSend: number;
  private inFlight = 0;
  private up = false;
  private readonly window: number;
  /** Records acknowledged by the broker over this pump's life. */
  sent = 0;

  constructor(private readonly options: OutboxPumpOptions) {
    this.window = options.window ?? 16;
    this.nextToSend = options.outbox.ackedThrough + 1;
  }

  /** The link came up or went down. */
  setConnected(up: boolean): void {
    this.up = up;
    if (up) this.pump();
  }

  /** Sends what the window allows; call after each append. */
  pump(): void {
    const { outbox } = this.options;
    while (this.up && this.inFlight < this.window) {
      const batch = outbox.read(this.nextToSend, this.window - this.inFlight);
      if (batch.length === 0) return;
      for (const { seq, payload } of batch) {
        this.inFlight++;
        this.nextToSend = seq + 1;
        this.options.publish(payload).then(
          () => {
            this.inFlight--;
            this.sent++;
            outbox.ack(seq);
            this.pump();
          },
          (err: unknown) => {
            this.inFlight--;
            this.nextToSend = Math.min(this.nextToSend, seq);
            this.options.log?.(`telemetry record ${seq} not delivered: ${(err as Error).message}`);
          },
        );
      }
    }
  }

  /** Publishes awaiting acknowledgement. */
  get inFlightCount(): number {
    return this.inFlight;
  }
}
