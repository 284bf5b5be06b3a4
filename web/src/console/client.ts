// The console's API client: typed from the served OpenAPI document like the
// worker's, but every request goes through the session worker, which adds
// the token (the page never holds it) and allows only the console's paths.
import createClient from "openapi-fetch";
import type { paths } from "../api/schema";
import { ask } from "../session";
import type { ApiFailure } from "../worker/protocol";

/** A `fetch` for openapi-fetch whose requests the session worker makes. */
async function viaWorker(request: Request): Promise<Response> {
  const url = new URL(request.url);
  const body = request.method === "GET" || request.method === "HEAD" ? null : await request.arrayBuffer();
  const r = await ask({
    op: "console",
    method: request.method,
    path: url.pathname + url.search,
    body: body && body.byteLength > 0 ? body : null,
    contentType: request.headers.get("Content-Type"),
  });
  if (!r.ok) {
    // The worker's own refusal, or no connection: in the API's error shape.
    return new Response(JSON.stringify({ error: { code: r.error.code, message: r.error.message } }), {
      status: r.error.status || 503,
      headers: { "Content-Type": "application/json" },
    });
  }
  const { status, contentType, body: answer } = r.value;
  const empty = status === 204 || status === 205 || status === 304;
  return new Response(empty ? null : answer, {
    status,
    headers: contentType ? { "Content-Type": contentType } : {},
  });
}

export const consoleApi = createClient<paths>({ baseUrl: location.origin, fetch: viaWorker });

/** The API's error, with the field it is about when it is about one. */
export type ConsoleFailure = ApiFailure & { field?: string };

/** The value of an openapi-fetch result, or its failure. */
export async function result<T>(
  call: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<{ ok: true; value: T } | { ok: false; error: ConsoleFailure }> {
  let r;
  try {
    r = await call;
  } catch {
    return { ok: false, error: { status: 0, code: "unavailable", message: "The server could not be reached. Check the connection and try again." } };
  }
  if (r.response.ok) return { ok: true, value: r.data as T };
  const e = (r.error as { error?: { code?: string; message?: string; field?: string } } | undefined)?.error;
  return {
    ok: false,
    error: {
      status: r.response.status,
      code: e?.code ?? "unavailable",
      message: e?.message ?? "The server could not be reached. Check the connection and try again.",
      field: e?.field,
    },
  };
}
