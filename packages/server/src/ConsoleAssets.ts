/**
 * The web console's HTTP side (D-51): the built assets served at `/console/` under a strict
 * Content-Security-Policy, and the Origin check on WebSocket upgrades. The assets are read once, when
 * the server starts, from the directory the configuration names (the server never imports the
 * console's source); nothing else on disk can be reached through these routes.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import type * as Http from "node:http"
import * as Path from "node:path"

/** Where the console is served. @since 0.1.0 @category constants */
export const PREFIX = "/console/"

/**
 * The policy every console response carries: only this origin's scripts, styles, images and
 * connections (the WebSocket included), no inline script or style, no framing, no plugins.
 *
 * @since 0.1.0
 * @category constants
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'"
].join("; ")

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
  ".txt": "text/plain; charset=utf-8",
  ".woff2": "font/woff2"
}

interface Asset {
  readonly body: Buffer
  readonly type: string
  /** Content-hashed file names never change: cache them for good. */
  readonly immutable: boolean
}

/** The console's routes over the loaded assets. @since 0.1.0 @category models */
export interface ConsoleAssets {
  /** Whether the console's files were found (else every console route answers 503 with the fix). */
  readonly built: boolean
  /** Answer a request whose path is `/console` or under `/console/`. */
  readonly serve: (req: Http.IncomingMessage, res: Http.ServerResponse, path: string) => void
}

/** Whether a request path belongs to the console. @since 0.1.0 @category routing */
export const isConsolePath = (path: string): boolean => path === "/console" || path.startsWith(PREFIX)

const MAX_FILES = 256
const MAX_FILE_BYTES = 8 * 1024 * 1024

const readTree = (dir: string): Map<string, Asset> => {
  const assets = new Map<string, Asset>()
  const walk = (relative: string) => {
    for (const entry of Fs.readdirSync(Path.join(dir, relative), { withFileTypes: true })) {
      const rel = relative === "" ? entry.name : `${relative}/${entry.name}`
      if (entry.isDirectory()) walk(rel)
      else if (entry.isFile() && assets.size < MAX_FILES) {
        const body = Fs.readFileSync(Path.join(dir, rel))
        if (body.length > MAX_FILE_BYTES) continue
        const type = TYPES[Path.extname(entry.name).toLowerCase()] ?? "application/octet-stream"
        assets.set(rel, { body, type, immutable: rel.startsWith("assets/") })
      }
    }
  }
  walk("")
  return assets
}

const securityHeaders = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin"
} as const

const text = (res: Http.ServerResponse, status: number, body: string, extra: Record<string, string> = {}) => {
  res.writeHead(status, { ...securityHeaders, "content-type": "text/plain; charset=utf-8", ...extra }).end(body)
}

/**
 * Read the built console from `dir` (its `index.html` and `assets/`). A missing or unreadable
 * directory is logged once: the console's routes then answer 503 saying how to build it, and the
 * rest of the server runs.
 *
 * @since 0.1.0
 * @category constructors
 */
export const load = (dir: string): Effect.Effect<ConsoleAssets> =>
  Effect.gen(function*() {
    const assets = yield* Effect.try(() => readTree(dir)).pipe(
      Effect.orElseSucceed(() => new Map<string, Asset>())
    )
    const built = assets.has("index.html")
    if (!built) {
      yield* Effect.logWarning(
        "the web console is not built: run `npm install` (or `npm run build -w @conclave/console`); /console/ answers 503 until then"
      ).pipe(Effect.annotateLogs({ dir }))
    }
    const serve = (req: Http.IncomingMessage, res: Http.ServerResponse, path: string): void => {
      if (req.method !== "GET" && req.method !== "HEAD") {
        return text(res, 405, "method not allowed", { allow: "GET, HEAD" })
      }
      if (path === "/console") return text(res, 308, "moved", { location: PREFIX })
      if (!built) return text(res, 503, "the web console is not built: run `npm install` on the server")
      let rel: string
      try {
        rel = decodeURIComponent(path.slice(PREFIX.length))
      } catch {
        return text(res, 400, "bad path")
      }
      // the client side routes by fragment: every page is index.html; only built files exist besides
      const asset = rel === "" || rel === "index.html" ? assets.get("index.html") : assets.get(rel)
      if (asset === undefined) return text(res, 404, "not found")
      res.writeHead(200, {
        ...securityHeaders,
        "content-type": asset.type,
        "content-length": String(asset.body.length),
        "cache-control": asset.immutable ? "public, max-age=31536000, immutable" : "no-cache"
      })
      res.end(req.method === "HEAD" ? undefined : asset.body)
    }
    return { built, serve }
  })

/**
 * The Origin check on WebSocket upgrades (D-51): an upgrade without an `Origin` header (a non-browser
 * client) passes; one with it passes only from an http(s) origin whose authority this server answers
 * as (its configuration, never the request's `Host`), or from an entry of `extra`
 * (`--console-origin`).
 *
 * @since 0.1.0
 * @category security
 */
export const originAllowed = (
  origin: string | undefined,
  authorities: ReadonlyArray<string>,
  extra: ReadonlyArray<string>
): boolean => {
  if (origin === undefined) return true
  const normalized = normalizeOrigin(origin)
  if (normalized === undefined) return false
  if (extra.some((entry) => normalizeOrigin(entry) === normalized)) return true
  const url = new URL(normalized)
  return authorities.includes(url.host.toLowerCase())
}

/**
 * An origin as browsers send it (`scheme://host[:port]`, default port omitted), or undefined when
 * `value` is not an http(s) origin (it has a path, a query, credentials…).
 *
 * @since 0.1.0
 * @category security
 */
export const normalizeOrigin = (value: string): string | undefined => {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return undefined
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return undefined
  if (url.username !== "" || url.password !== "" || url.search !== "" || url.hash !== "") return undefined
  if (url.pathname !== "/" && url.pathname !== "") return undefined
  return url.origin
}
