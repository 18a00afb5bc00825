// The manager's requests to this device (<prefix>/request) and the agent's answers (<prefix>/response):
// its profile, a measurement of its latency table whose entries stream back as they finish, and packages
// timed on the device (package-requests.ts). One measurement runs at a time, with the camera loop paused
// (context.pause) from its start to its end, whatever the end (done, refused, failed, the agent stopping);
// it stops when the agent stops (a partial table is what the manager then holds, and the next request
// resumes from it).
import { WhittleError } from '../../native/whittle-error.js';
import { collectDeviceProfile } from '../profile/profile.js';
import {
  PROTOCOL_VERSION,
  type RequestMessage,
  RequestMessageSchema,
  type ResponseMessage,
} from '../protocol/messages.js';
import { measureOnRequest } from './latency-requests.js';
import { measurePackagesOnRequest, type PackageMeasureHost } from './package-requests.js';

/** A ResponseMessage without its envelope (v, id, ts): what a handler answers. */
export type ResponseBody = ResponseMessage extends infer M
  ? M extends ResponseMessage
    ? Omit<M, 'v' | 'id' | 'ts'>
    : never
  : never;

export interface RequestContext {
  /** Publishes on <prefix>/response (QoS 1); resolves on the broker's acknowledgement. */
  publish: (payload: string) => Promise<void>;
  /** The agent's state directory: the profile's storage figure is its free space. */
  stateDir: string;
  /** Aborted when the agent stops. */
  signal: AbortSignal;
  log: (line: string) => void;
  /** The pinned package key and the deployed-package loader, for measure-packages (absent: refused). */
  packages?: Pick<PackageMeasureHost, 'publicKey' | 'loadPackage'>;
  /** Pauses the camera loop for the measurement of request `id`; the function it returns resumes it. */
  pause?: (id: string) => () => void;
}

/** A request this agent cannot serve as it is configured. */
export class PackageRequestError extends WhittleError {
  override readonly name = 'PackageRequestError';
  readonly code = 'unsupported';
}

export class RequestHandler {
  private measuring: string | null = null;

  constructor(private readonly context: RequestContext) {}

  /** A request payload as it arrived; bad ones are logged (and answered when their id can be read). */
  handle(payload: Buffer): void {
    let json: unknown;
    try {
      json = JSON.parse(payload.toString('utf8'));
    } catch {
      this.context.log('request: refused one that is not JSON');
      return;
    }
    const parsed = RequestMessageSchema.safeParse(json);
    if (!parsed.success) {
      const why = parsed.error.issues
        .map((i) => `${i.path.join('.') || '(request)'}: ${i.message}`)
        .join('; ');
      this.context.log(`request: refused: ${why}`);
      const id = (json as { id?: unknown } | null)?.id;
      if (typeof id === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(id))
        this.answer(id, {
          kind: 'error',
          code: 'bad-request',
          message: `this agent cannot read the request: ${why}`,
        });
      return;
    }
    void this.run(parsed.data);
  }

  private async run(request: RequestMessage): Promise<void> {
    try {
      if (request.kind === 'profile') {
        this.answer(request.id, {
          kind: 'profile',
          profile: collectDeviceProfile({ dataDir: this.context.stateDir }),
        });
        return;
      }
      if (this.measuring !== null) {
        this.answer(request.id, {
          kind: 'error',
          code: 'busy',
          message: `the device is already measuring (request ${this.measuring})`,
        });
        return;
      }
      this.measuring = request.id;
      const resume = this.context.pause?.(request.id);
      try {
        if (request.kind === 'latency-table') {
          this.context.log(`latency table: measuring the ${request.grid} grid for request ${request.id}`);
          await measureOnRequest(request, {
            signal: this.context.signal,
            send: (body) => this.answer(request.id, body),
          });
        } else {
          const { packages } = this.context;
          if (packages === undefined)
            throw new PackageRequestError('this agent cannot time packages (it has no package loader)');
          this.context.log(
            `measuring ${request.packages.length} package(s), ${request.runs} runs each, for request ${request.id}`,
          );
          await measurePackagesOnRequest(
            request,
            {
              ...packages,
              stateDir: this.context.stateDir,
              signal: this.context.signal,
              log: this.context.log,
            },
            (body) => this.answer(request.id, body),
          );
        }
      } finally {
        this.measuring = null;
        resume?.();
      }
    } catch (err) {
      // A refusal of ours (a resume table from another build, no addon) is answered; anything else too, as
      // the manager would otherwise wait for its timeout, and logged with its stack.
      if (!(err instanceof WhittleError)) this.context.log(`request ${request.id}: ${(err as Error).stack}`);
      this.answer(request.id, {
        kind: 'error',
        code: err instanceof WhittleError ? err.code : 'internal',
        message: (err as Error).message,
      });
    }
  }

  private answer(id: string, body: ResponseBody): void {
    const message = { v: PROTOCOL_VERSION, id, ts: Date.now(), ...body } as ResponseMessage;
    this.context.publish(JSON.stringify(message)).catch((err: unknown) => {
      this.context.log(`request ${id}: cannot answer: ${(err as Error).message}`);
    });
  }
}
