// The soak of issue 9 at full size under `npm run soak` (SOAK_FULL=1): 50 migrations. Without
// SOAK_FULL it runs the bounded form (10), the same as soak-short.test.ts in the normal suite.
import { test } from 'uvu';
import { registerSoakTests } from './soak-run.js';

registerSoakTests(process.env.SOAK_FULL ? 50 : 10);
test.run();
