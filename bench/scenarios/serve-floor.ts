/**
 * The fail-fast floor for S3: a bare node:http server that reads each request
 * and answers the relay's breaker-open problem at once, with no framework and
 * no work. No server on this machine can answer a refusal faster than this one,
 * with the same load generator at the same rate. Prints `{"port":N}` when listening.
 */
import { createServer } from 'node:http';

const BODY = JSON.stringify({ type: 'about:blank', title: 'Service Unavailable', status: 503, code: 'CIRCUIT_OPEN' });

const server = createServer((req, res) => {
  req.resume();
  req.once('end', () => {
    res.writeHead(503, { 'content-type': 'application/problem+json', 'retry-after': '1' });
    res.end(BODY);
  });
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('expected a TCP address');
  process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
