// The agent's link to the manager's broker: connects with the device's credentials, announces itself
// with a retained status message, leaves a last will that marks it offline, and reconnects with
// exponential backoff, logging each failure. The session is persistent (clean: false, a fixed client id
// per device), so QoS 1 messages in flight when the connection drops are re-sent after it returns.
import mqtt, { type MqttClient } from 'mqtt';

import {
  type DeviceInfo,
  type DeviceLeaf,
  deviceTopic,
  PROTOCOL_VERSION,
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
  /** Retained deploy targets the manager publishes for this device. */
  onTarget?: (payload: Buffer) => void;
  /** The manager's requests to this device (profile, latency table), answered on <prefix>/response. */
  onRequest?: (payload: Buffer) => void;
  /** Called when the connection comes up (true) or goes down (false). */
  onConnectionChange?: (up: boolean) => void;
}

export class MqttLink {
  private readonly client: MqttClient;
  private readonly backoff: Backoff;
  private everConnected = false;
  private paused: StatusMessage['paused'];

  constructor(private options: LinkOptions) {
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
      clean: false,
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
      if (options.onTarget) this.client.subscribe(deviceTopic(info.id, 'target'), { qos: 1 });
      if (options.onRequest) this.client.subscribe(deviceTopic(info.id, 'request'), { qos: 1 });
      options.onConnectionChange?.(true);
    });
    this.client.on('message', (topic, payload) => {
      if (topic === deviceTopic(info.id, 'target')) options.onTarget?.(payload);
      else if (topic === deviceTopic(info.id, 'request')) options.onRequest?.(payload);
    });
    this.client.on('error', (err: Error & { code?: string | number }) => {
      const reason =
        err.code === 4 || err.code === 5 || err.code === 134 || err.code === 135
          ? `broker refused the credentials of device ${info.id}`
          : err.message || String(err.code);
      options.log(`broker ${options.brokerUrl}: ${reason}`);
    });
    this.client.on('close', () => {
      options.onConnectionChange?.(false);
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

  /** Publishes at QoS 1 under this device's prefix; resolves on the broker's PUBACK. While the
   * connection is down the message waits in the client's outgoing store. */
  async publishAcked(leaf: DeviceLeaf, payload: string): Promise<void> {
    await this.client.publishAsync(deviceTopic(this.options.info.id, leaf), payload, { qos: 1 });
  }

  /** Publishes at QoS 0 when connected (snapshots: a lost one is replaced by the next); false if not. */
  publishVolatile(leaf: DeviceLeaf, payload: string | Buffer): boolean {
    if (!this.client.connected) return false;
    this.client.publish(deviceTopic(this.options.info.id, leaf), payload, { qos: 0 });
    return true;
  }

  /** The camera loop is paused for a measurement (or no longer, undefined): announce it (retained status). */
  setPaused(paused: StatusMessage['paused']): void {
    this.paused = paused;
    if (this.client.connected) this.publishStatus(true);
  }

  /** The device now serves another model: announce it (retained status). */
  updateModel(model: DeviceInfo['model']): void {
    this.options.info = { ...this.options.info, model };
    if (this.client.connected) this.publishStatus(true);
  }

  private publishStatus(online: boolean): void {
    const status: StatusMessage = {
      v: PROTOCOL_VERSION,
      online,
      ts: Date.now(),
      info: this.options.info,
      ...(this.paused ? { paused: this.paused } : {}),
    };
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
