// The link's state in the header: a dot and a word (the word is what tests read), plus a detail line.
import type { ConnectionState } from './live-connection.js';

function detail(state: ConnectionState, now: number): string {
  switch (state.kind) {
    case 'connecting':
      return 'Connecting to the core…';
    case 'live':
      return 'Updates arrive as the devices send them.';
    case 'reconnecting': {
      const seconds = Math.max(0, Math.ceil((state.retryAt - now) / 1000));
      return `${state.reason}; retry ${state.attempt} in ${seconds} s`;
    }
    case 'unauthorized':
      // The page body says why and what to do; the header only names the problem.
      return 'no valid token in the page address';
  }
}

export function ConnectionIndicator({ state, now }: { state: ConnectionState; now: number }) {
  return (
    <div class={`connection connection-${state.kind}`}>
      <span class="connection-dot" aria-hidden="true" />
      <span class="connection-state" data-testid="connection-state" data-state={state.kind}>
        {state.kind}
      </span>
      <span class="connection-detail">{detail(state, now)}</span>
    </div>
  );
}
