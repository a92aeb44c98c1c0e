import { METHODS } from 'node:http';

/**
 * Methods a route may list: every method Node's HTTP parser accepts, except
 * CONNECT, which Node hands to a tunnel handler and never to a route.
 */
export const ROUTABLE_METHODS: readonly string[] = METHODS.filter((m) => m !== 'CONNECT');

/** A route's methods when it lists none (contract: every method but TRACE and CONNECT). */
export const DEFAULT_METHODS: readonly string[] = ROUTABLE_METHODS.filter((m) => m !== 'TRACE');
