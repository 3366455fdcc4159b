// Entry of a protect-pool worker thread (protect-pool.ts): the thread starts without the parent's
// TypeScript loader (tsx under the services, vite-node under the tests), so it registers tsx itself
// and then runs the TypeScript worker.
import { register } from 'tsx/esm/api';

register();
await import('./protect-pool.worker.ts');
