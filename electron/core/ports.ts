// Listening on a port with an error that names which port and what it is for.
import type { Server } from 'node:net';

import { WhittleError } from '../../native/whittle-error.js';

export class PortInUseError extends WhittleError {
  override name = 'PortInUseError';
  readonly code = 'port-in-use';
}

/** Resolves with the bound port; rejects with PortInUseError naming the port's purpose and the flag
 * that changes it when the port is taken. */
export function listen(
  server: Server,
  host: string,
  port: number,
  purpose: string,
  flag: string,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      server.off('listening', onListening);
      if (err.code === 'EADDRINUSE') {
        reject(
          new PortInUseError(
            `port ${port} (${purpose}) on ${host} is already in use; choose another with ${flag}`,
          ),
        );
      } else if (err.code === 'EACCES') {
        reject(
          new PortInUseError(
            `no permission to listen on port ${port} (${purpose}); choose another with ${flag}`,
          ),
        );
      } else {
        reject(err);
      }
    };
    const onListening = (): void => {
      server.off('error', onError);
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : port);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}
