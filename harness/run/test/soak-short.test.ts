// The bounded soak for the normal suite (issue 9: "10 migrations in CI"); the full 50 run
// under `npm run soak` (soak.test.ts).
import { test } from 'uvu';
import { registerSoakTests } from './soak-run.js';

registerSoakTests(10);
test.run();
