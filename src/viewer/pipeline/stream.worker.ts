/** The stream worker: a retrieval's sealed frames fetched and opened off the page's thread. */
import { StreamJob } from './stream-job.ts';
import type { StreamRequest } from './stream.ts';

const scope = self as unknown as {
  onmessage: ((e: MessageEvent<StreamRequest>) => void) | null;
  postMessage(message: unknown, transfer: Transferable[]): void;
};
const job = new StreamJob((n, transfer) => scope.postMessage(n, transfer), fetch.bind(self));

scope.onmessage = (e) => job.handle(e.data);
