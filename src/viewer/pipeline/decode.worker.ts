/** The decode worker: image keys live here, in memory, for the session; pixels leave transferred. */
import { DecodeJob } from './job.ts';
import type { WorkerRequest } from './protocol.ts';

const scope = self as unknown as {
  onmessage: ((e: MessageEvent<WorkerRequest>) => void) | null;
  postMessage(message: unknown, transfer: Transferable[]): void;
};
const job = new DecodeJob((notice, transfer) => scope.postMessage(notice, transfer));

scope.onmessage = (e) => {
  void job.handle(e.data).then((r) => scope.postMessage(r.message, r.transfer));
};
