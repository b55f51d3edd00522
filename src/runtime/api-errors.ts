/**
 * Reading the HTTP status out of whatever @kubernetes/client-node threw: its generated APIs throw
 * `ApiException` with `code`, its Watch throws an Error with `statusCode`. Retry decisions
 * (409 conflict, 404 not found, 410 gone) depend on it.
 */
export function httpStatus(err: unknown): number | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const { code, statusCode } = err as { code?: unknown; statusCode?: unknown };
  if (typeof code === "number") return code;
  if (typeof statusCode === "number") return statusCode;
  return undefined;
}

export const isConflict = (err: unknown): boolean => httpStatus(err) === 409;
export const isNotFound = (err: unknown): boolean => httpStatus(err) === 404;
