// The agent's link to the manager's broker: connects with the device's credentials, announces itself
// with a retained status message, leaves a last will that marks it offline, and reconnects with
// exponential backoff, logging each failure.
import mqtt, { type MqttClient } from 'mqtt';

import {
  type DeviceInfo,
  deviceTopic,
  PROTOCOL_VERSION,
  type StatsMessage,
  type StatusMessage,
} from '../protocol/messages.js';
import { Backoff } from './backoff.js';

export interface LinkOptions {
  /** mqtt://host:port or mqtts://host:port */
  brokerUrl: string;
  username: string;
  password: string;
  info: DeviceInfo;
  log: (line: string) => void;
  /** Backoff bounds for reconnecting, milliseconds. */
  reconnectInitialMs?: number;
  reconnectMaxMs?: number;
}

export class MqttLink {
  private readonly client: MqttClient;
  private readonly backoff: Backoff;
  private everConnected = false;

  constructor(private readonly options: LinkOptions) {
    this.backoff = new Backoff({
      initialMs: options.reconnectInitialMs ?? 1000,
      maxMs: options.reconnectMaxMs ?? 30_000,
    });
    const { info } = options;
    const will: StatusMessage = { v: PROTOCOL_VERSION, online: false, ts: Date.now() };
    this.client = mqtt.connect(options.brokerUrl, {
      clientId: `whittle-agent-${info.id}`,
      username: options.username,
      password: options.password,
      clean: true,
      keepalive: 10,
      connectTimeout: 10_000,
      reconnectPeriod: this.backoff.next(),
      will: {
        topic: deviceTopic(info.id, 'status'),
        payload: Buffer.from(JSON.stringify(will)),
        qos: 1,
        retain: true,
      },
    });
    this.client.on('connect', () => {
      this.backoff.reset();
      this.client.options.reconnectPeriod = this.backoff.next();
      options.log(
        `${this.everConnected ? 'reconnected' : 'connected'} to broker ${options.brokerUrl} as ${info.id}`,
      );
      this.everConnected = true;
      this.publishStatus(true);
    });
    this.client.on('error', (err: Error & { code?: string | number }) => {
      const reason =
        err.code === 4 || err.code === 5 || err.code === 134 || err.code === 135
          ? `broker refused the credentials of device ${info.id}`
          : err.message || String(err.code);
      options.log(`broker ${options.brokerUrl}: ${reason}`);
    });
    this.client.on('close', () => {
      if (this.client.disconnecting) return;
      // mqtt.js has already scheduled this reconnect with the current reconnectPeriod; it reads the
      // option again for the next one, so growing it after each failure gives exponential backoff.
      const delay = this.client.options.reconnectPeriod ?? 0;
      this.client.options.reconnectPeriod = this.backoff.next();
      options.log(
        `cannot reach broker ${options.brokerUrl}${this.everConnected ? ' (connection lost)' : ''}; retrying in ${(delay / 1000).toFixed(1)} s`,
      );
    });
  }

  get connected(): boolean {
    return this.client.connected;
  }

  publishStats(stats: StatsMessage): void {
    if (!this.client.connected) return; // store-and-forward comes with the telemetry queue
    this.client.publish(deviceTopic(this.options.info.id, 'stats'), JSON.stringify(stats), { qos: 0 });
  }

  private publishStatus(online: boolean): void {
    const status: StatusMessage = { v: PROTOCOL_VERSION, online, ts: Date.now(), info: this.options.info };
    this.client.publish(deviceTopic(this.options.info.id, 'status'), JSON.stringify(status), {
      qos: 1,
      retain: true,
    });
  }

  /** Marks the device offline (retained) and disconnects cleanly. */
  async close(): Promise<void> {
    if (this.client.connected) {
      const status: StatusMessage = {
        v: PROTOCOL_VERSION,
        online: false,
        ts: Date.now(),
        info: this.options.info,
      };
      await this.client
        .publishAsync(deviceTopic(this.options.info.id, 'status'), JSON.stringify(status), {
          qos: 1,
          retain: true,
        })
        .catch(() => undefined);
    }
    await this.client.endAsync(false);
  }
}
