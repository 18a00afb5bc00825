// Entry point of the renderer bundle (built by scripts/build-renderer.mjs into dist/renderer/app.js).
import { render } from 'preact';

import { App } from './app.js';

const root = document.getElementById('app');
if (root === null) throw new Error('index.html has no #app element to render Whittle into');
render(<App />, root);
