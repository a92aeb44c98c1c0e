import { jsonAnswer } from './answer.js';
import type { ProviderAnswer } from './answer.js';
import type { Provider } from './provider.js';

/**
 * Any method, any path, any body. Without a fixed answer it sends 200 JSON
 * `{ method, path, headers, bodyBase64 }`; with one it sends that, so a test
 * can get a 3xx with `Location`, several `Set-Cookie` or a large body.
 */
export function createEchoProvider(fixed: ProviderAnswer | undefined): Provider {
  let answered = 0;
  return {
    answer(request) {
      answered += 1;
      return (
        fixed ??
        jsonAnswer(200, {
          method: request.method,
          path: request.path,
          headers: request.headers,
          bodyBase64: request.body.toString('base64'),
        })
      );
    },
    created: () => answered,
    reset() {
      answered = 0;
    },
  };
}
