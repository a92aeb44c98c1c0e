import type { ProviderAnswer } from './answer.js';
import type { RecordedRequest } from './recording.js';

/** One provider's behaviour, without HTTP: a recorded request in, an answer out. */
export interface Provider {
  answer(request: RecordedRequest): ProviderAnswer;
  /** Effects carried out: charges created, messages queued, mails accepted, echoes sent. */
  created(): number;
  /** Forgets every effect and every remembered key. */
  reset(): void;
}
