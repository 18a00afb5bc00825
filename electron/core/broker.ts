// The embedded MQTT broker agents connect to. Every client authenticates with the credentials the
// manager issued to its device; a device may publish and subscribe only under its own topic prefix.
import { createServer, type Server, Socket } from 'node:net';

import { Aedes, type AedesPublishPacket, type AuthenticateError, type Client } from 'aedes';

import { DEVICE_LEAVES, DeviceIdSchema } from '../../agent/protocol/messages.js';
import { listen } from './ports.js';
import type { Store } from './store.js';

export interface BrokerOptions {
  host: string;
  port: number;
  store: Store;
  /** Every publish that passed the ACL, the agents' last wills included. */
  onPublish: (topic: string, payload: Buffer) => void;
  onClientGone: (username: string) => void;
  log: (line: string) => void;
}

export interface Broker {
  port: number;
  /** Publishes as the manager (no ACL applies): QoS 1; `retain` keeps it for devices that connect later. */
  publish(topic: string, payload: string, retain: boolean): Promise<void>;
  /** The local address of the device's live connection: the manager's address as that device reaches
   * it (undefined while the device is offline). */
  addressSeenBy(deviceId: string): string | undefined;
  close(): Promise<void>;
}

const BAD_USERNAME_OR_PASSWORD = 4;

export async function startBroker(options: BrokerOptions): Promise<Broker> {
  const usernames = new WeakMap<Client, string>();
  const aedes = await Aedes.createBroker({
    authenticate(client, username, password, done) {
      const ok =
        username !== undefined &&
        DeviceIdSchema.safeParse(username).success &&
        password !== undefined &&
        options.store.checkCredential(username, password.toString('utf8'));
      if (!ok) {
        options.log(
          `broker: refused client ${client.id} (user ${username ?? '-'}): bad username or password`,
        );
        const err = new Error('bad username or password') as AuthenticateError;
        err.returnCode = BAD_USERNAME_OR_PASSWORD;
        done(err, false);
        return;
      }
      usernames.set(client, username);
      done(null, true);
    },
    authorizePublish(client, packet, callback) {
      const user = client ? usernames.get(client) : undefined;
      // A device publishes only the protocol's device leaves under its own prefix; `target` is the
      // manager's (retained deploy targets), so a device cannot deploy to itself.
      const prefix = `whittle/v1/devices/${user}/`;
      const leaf = packet.topic.slice(prefix.length);
      const own =
        user !== undefined &&
        packet.topic.startsWith(prefix) &&
        (DEVICE_LEAVES as readonly string[]).includes(leaf);
      callback(own ? null : new Error(`device ${user ?? '?'} may not publish to ${packet.topic}`));
    },
    authorizeSubscribe(client, subscription, callback) {
      const user = usernames.get(client);
      const own = user !== undefined && subscription.topic.startsWith(`whittle/v1/devices/${user}/`);
      callback(
        own ? null : new Error(`device ${user ?? '?'} may not subscribe to ${subscription.topic}`),
        subscription,
      );
    },
  });
  aedes.on('publish', (packet: AedesPublishPacket) => {
    // $SYS heartbeats and the like are outside our namespace.
    if (!packet.topic.startsWith('whittle/')) return;
    options.onPublish(
      packet.topic,
      Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload),
    );
  });
  // A device that reconnects before its old connection times out has two clients for a moment; it is
  // gone only when its last one is.
  const live = new Map<string, Set<Client>>();
  const addresses = new Map<string, string>();
  aedes.on('clientReady', (client: Client) => {
    const user = usernames.get(client);
    if (!user) return;
    const set = live.get(user) ?? new Set<Client>();
    set.add(client);
    live.set(user, set);
    const conn: unknown = client.conn;
    if (conn instanceof Socket && conn.localAddress) addresses.set(user, conn.localAddress);
  });
  aedes.on('clientDisconnect', (client: Client) => {
    const user = usernames.get(client);
    if (!user) return;
    const set = live.get(user);
    set?.delete(client);
    if (!set?.size) {
      live.delete(user);
      addresses.delete(user);
      options.onClientGone(user);
    }
  });

  const server: Server = createServer((socket) => aedes.handle(socket));
  let port: number;
  try {
    port = await listen(server, options.host, options.port, 'MQTT broker for agents', '--mqtt-port');
  } catch (err) {
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    throw err;
  }
  return {
    port,
    publish: (topic, payload, retain) =>
      new Promise<void>((resolve, reject) => {
        aedes.publish(
          { cmd: 'publish', topic, payload: Buffer.from(payload), qos: 1, retain, dup: false },
          (err) => (err ? reject(err) : resolve()),
        );
      }),
    addressSeenBy: (deviceId) => addresses.get(deviceId),
    close: () =>
      new Promise<void>((resolve) => {
        aedes.close(() => server.close(() => resolve()));
      }),
  };
}
