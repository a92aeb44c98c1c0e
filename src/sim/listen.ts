import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Listens and resolves once bound; rejects with the bind error (EADDRINUSE, EACCES). */
export function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/** The base URL a local client reaches a listening server at, e.g. `http://127.0.0.1:40123`. */
export function urlOf(address: AddressInfo): string {
  // A wildcard bind is reached locally through loopback.
  const host =
    address.address === '0.0.0.0' ? '127.0.0.1' : address.address === '::' ? '::1' : address.address;
  return `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
}
