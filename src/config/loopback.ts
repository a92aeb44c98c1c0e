const LOOPBACK_HOSTS = /^(127(?:\.\d{1,3}){3}|::1|localhost)$/i;

/** Whether a bind address only accepts connections from this machine. */
export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_HOSTS.test(host);
}
