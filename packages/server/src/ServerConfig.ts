/**
 * Configuration of an embedded conclave server (SPEC §3.1, §8, DECISIONS D-3, D-9, D-10).
 *
 * @since 0.1.0
 */
import { Auth, Limits } from "@conclave/protocol"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Os from "node:os"
import * as Admins from "./Admins.js"
import { parseCidr } from "./internal/proxies.js"

/** @since 0.1.0 @category models */
export interface ServerConfigShape {
  /** This node's name in `GET /status` and cluster traffic (D-41; default `<hostname>-<pid>`). */
  readonly nodeId: string
  /** Interface to bind (default `0.0.0.0`). */
  readonly host: string
  /** Port to bind; `0` picks a free one (observe it through `ServerAddress`). Default 4390. */
  readonly port: number
  /** Public URLs the server is reachable at; their authorities are accepted as `hello.host` (D-3). */
  readonly publicUrls: ReadonlyArray<string>
  /** The server-admin allowlist (SPEC §3.15), already parsed and validated. */
  readonly admins: ReadonlyArray<Admins.AdminEntry>
  /** WebSocket message cap enforced before buffering (D-9, default 1 MiB). */
  readonly maxFrameBytes: number
  /** Message body cap in UTF-8 bytes (D-9, default 64 KiB). */
  readonly maxBodyBytes: number
  /** Token-bucket refill per session over `channel_msg` + `whisper` (D-10, default 2/s; 0 = unlimited). */
  readonly ratePerSecond: number
  /** Token-bucket size (D-10, default 20). */
  readonly rateBurst: number
  /** Connections still in the handshake per remote address (D-10, default 32; 0 = unlimited). */
  readonly maxPendingPerIp: number
  /**
   * Handshake failures that cost the server (a signature verified bad, a user created) per remote
   * address per minute (D-10, default 30; 0 = unlimited); past it, keys already enrolled still pass.
   */
  readonly registerLimitPerMinute: number
  /**
   * Proxies (addresses or CIDR blocks) whose `X-Forwarded-For` names the client address the
   * per-address limits count under (`--trust-proxy`, default none: the header is ignored).
   */
  readonly trustProxy: ReadonlyArray<string>
  /** Whole-handshake deadline (SPEC §2.6, 10 s). */
  readonly handshakeTimeout: Duration.Duration
  /** Sessions with no inbound frame for this long are reaped (SPEC §3.4, 60 s). */
  readonly idleTimeout: Duration.Duration
  /**
   * How often this node renews its sessions' presence lease with the other nodes (D-42, 5 s): a dead
   * node's sessions leave `who` within three intervals.
   */
  readonly heartbeatInterval: Duration.Duration
  /** How often the reaper runs (15 s). */
  readonly reaperInterval: Duration.Duration
  /** Channel history retention (SPEC §3.17.3, 7 days). */
  readonly retention: Duration.Duration
  /** How often the retention sweep runs (1 hour; the first run is at startup). */
  readonly retentionSweepInterval: Duration.Duration
  /** How long the graceful drain waits for writers to flush (D-19, 5 s). */
  readonly drainTimeout: Duration.Duration
  /** Server→client frames in flight per session before it is dropped as a slow consumer (1024). */
  readonly outboxCapacity: number
  /** Undecoded client frames read ahead per session before the socket is paused (D-11, 64). */
  readonly inboxCapacity: number
  /** Rows per history page (500). */
  readonly historyPageCap: number
  /** Bytes per history page (1 MiB): a page is cut there, at least one row, and `more` says so. */
  readonly historyPageMaxBytes: number
  /**
   * Bytes written to a session that the kernel has not taken yet (8 MiB) before the session is
   * dropped as a slow consumer: the outbox is bounded in bytes as well as frames.
   */
  readonly outboxMaxBytes: number
  /**
   * The built web console's directory (`index.html` and `assets/`), served at `/console/` (D-51);
   * null serves no console (`--no-console`, or an embedding without one).
   */
  readonly consoleDir: string | null
  /**
   * Origins besides the server's own from which a browser may open a WebSocket (D-51,
   * `--console-origin`), as `scheme://host[:port]`.
   */
  readonly consoleOrigins: ReadonlyArray<string>
  /** How long a console enrollment code stays redeemable (D-51, 10 minutes). */
  readonly enrollCodeTtl: Duration.Duration
}

/** The presence heartbeat interval by default (D-42, `serve --heartbeat-ms`). @since 0.1.0 @category defaults */
export const DEFAULT_HEARTBEAT_MS = 5000
/** The shortest heartbeat interval `serve` accepts. @since 0.1.0 @category defaults */
export const MIN_HEARTBEAT_MS = 100
/** The longest heartbeat interval `serve` accepts (a dead node then lingers in `who` up to 3 min). @since 0.1.0 @category defaults */
export const MAX_HEARTBEAT_MS = 60_000

const NATS_PREFIX = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/

/**
 * Whether `prefix` can be a deployment's NATS subject prefix (`serve --nats-prefix`): 1–128
 * characters of dot-separated tokens of `[A-Za-z0-9_-]` (no wildcards, no empty token).
 *
 * @since 0.1.0
 * @category validation
 */
export const isNatsPrefix = (prefix: string): boolean => prefix.length <= 128 && NATS_PREFIX.test(prefix)

/** @since 0.1.0 @category tags */
export class ServerConfig extends Context.Tag("@conclave/server/ServerConfig")<ServerConfig, ServerConfigShape>() {}

/** @since 0.1.0 @category defaults */
export const defaults: ServerConfigShape = {
  nodeId: `${Os.hostname()}-${process.pid}`,
  host: "0.0.0.0",
  port: Limits.DEFAULT_PORT,
  publicUrls: [],
  admins: [],
  maxFrameBytes: Limits.DEFAULT_MAX_FRAME_BYTES,
  maxBodyBytes: Limits.DEFAULT_MAX_BODY_BYTES,
  ratePerSecond: Limits.DEFAULT_RATE_PER_SECOND,
  rateBurst: Limits.DEFAULT_RATE_BURST,
  maxPendingPerIp: Limits.DEFAULT_MAX_PENDING_PER_IP,
  registerLimitPerMinute: Limits.DEFAULT_REGISTER_LIMIT_PER_MINUTE,
  trustProxy: [],
  handshakeTimeout: Duration.millis(Limits.HANDSHAKE_TIMEOUT_MS),
  idleTimeout: Duration.millis(Limits.IDLE_TIMEOUT_MS),
  heartbeatInterval: Duration.millis(DEFAULT_HEARTBEAT_MS),
  reaperInterval: Duration.millis(Limits.REAPER_INTERVAL_MS),
  retention: Duration.millis(Limits.HISTORY_RETENTION_MS),
  retentionSweepInterval: Duration.millis(Limits.RETENTION_SWEEP_INTERVAL_MS),
  drainTimeout: Duration.seconds(5),
  outboxCapacity: Limits.OUTBOX_CAPACITY,
  inboxCapacity: Limits.INBOX_CAPACITY,
  historyPageCap: Limits.HISTORY_PAGE_CAP,
  historyPageMaxBytes: Limits.HISTORY_PAGE_MAX_BYTES,
  outboxMaxBytes: Limits.OUTBOX_MAX_BYTES,
  consoleDir: null,
  consoleOrigins: [],
  enrollCodeTtl: Duration.millis(Limits.ENROLL_CODE_TTL_MS)
}

/** The defaults overridden by `options`. @since 0.1.0 @category constructors */
export const make = (options: Partial<ServerConfigShape> = {}): ServerConfigShape => ({ ...defaults, ...options })

/** @since 0.1.0 @category layers */
export const layer = (options: Partial<ServerConfigShape> = {}): Layer.Layer<ServerConfig> =>
  Layer.succeed(ServerConfig, make(options))

/**
 * Parse a listen address `host:port` (`[v6]:port` for IPv6; an empty host is every interface).
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseBind = (value: string): Either.Either<{ readonly host: string; readonly port: number }, string> => {
  const match = /^(?:\[([^\]]*)\]|([^:]*)):(\d{1,5})$/.exec(value.trim())
  const port = match === null ? NaN : Number(match[3])
  if (match === null || !Number.isInteger(port) || port > 65535) {
    return Either.left(`invalid --bind \`${value}\`: expected host:port`)
  }
  const host = match[1] ?? match[2] ?? ""
  return Either.right({ host: host === "" ? "0.0.0.0" : host, port })
}

const inRange = (name: string, fallback: number, min: number, max: number, integer = true) =>
  (integer ? Config.integer(name) : Config.number(name)).pipe(
    Config.withDefault(fallback),
    Config.validate({ message: `${name}: expected ${min}..${max}`, validation: (n) => n >= min && n <= max })
  )

const split = (raw: string): ReadonlyArray<string> => raw.split(",").map((s) => s.trim()).filter((s) => s.length > 0)

/**
 * Check `--trust-proxy` values (addresses or CIDR blocks): the first invalid one's message.
 *
 * @since 0.1.0
 * @category parsing
 */
export const checkTrustProxy = (values: ReadonlyArray<string>): Either.Either<ReadonlyArray<string>, string> => {
  for (const value of values) {
    const parsed = parseCidr(value)
    if (Either.isLeft(parsed)) return Either.left(parsed.left)
  }
  return Either.right(values)
}

/**
 * The configuration read through Effect's `Config` (the environment by default), with the names
 * `conclave serve` reads: `CONCLAVE_BIND` (host:port), `CONCLAVE_PUBLIC_URLS` and `CONCLAVE_ADMINS`
 * (comma lists), `CONCLAVE_MAX_FRAME_BYTES`, `CONCLAVE_MAX_BODY_BYTES`, `CONCLAVE_RATE`,
 * `CONCLAVE_BURST`, `CONCLAVE_MAX_PENDING_PER_IP`, `CONCLAVE_REGISTER_LIMIT`, `CONCLAVE_TRUST_PROXY` (a comma
 * list of addresses or CIDR blocks), `CONCLAVE_NODE_ID`. Unset names take the
 * defaults; a value out of range or unparseable is a `ConfigError` naming it.
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<ServerConfigShape> = Config.all({
  bind: Config.string("CONCLAVE_BIND").pipe(
    Config.withDefault(Limits.DEFAULT_BIND),
    Config.mapOrFail((raw) =>
      Either.mapLeft(parseBind(raw), (message) => ConfigError.InvalidData(["CONCLAVE_BIND"], message))
    )
  ),
  publicUrls: Config.string("CONCLAVE_PUBLIC_URLS").pipe(
    Config.withDefault(""),
    Config.map(split),
    Config.validate({
      message: "CONCLAVE_PUBLIC_URLS: expected URLs (comma-separated)",
      validation: (urls) => urls.every((url) => Auth.authorityOf(url) !== undefined)
    })
  ),
  admins: Config.string("CONCLAVE_ADMINS").pipe(
    Config.withDefault(""),
    Config.mapOrFail((raw) =>
      Either.mapLeft(Admins.parse(split(raw)), (e) => ConfigError.InvalidData(["CONCLAVE_ADMINS"], e.message))
    )
  ),
  maxFrameBytes: inRange("CONCLAVE_MAX_FRAME_BYTES", defaults.maxFrameBytes, 1024, Limits.MAX_FRAME_BYTES_CEILING),
  maxBodyBytes: inRange("CONCLAVE_MAX_BODY_BYTES", defaults.maxBodyBytes, 1, Limits.MAX_FRAME_BYTES_CEILING),
  ratePerSecond: inRange("CONCLAVE_RATE", defaults.ratePerSecond, 0, 1_000_000, false),
  rateBurst: inRange("CONCLAVE_BURST", defaults.rateBurst, 1, 1_000_000),
  maxPendingPerIp: inRange("CONCLAVE_MAX_PENDING_PER_IP", defaults.maxPendingPerIp, 0, 1_000_000),
  registerLimitPerMinute: inRange("CONCLAVE_REGISTER_LIMIT", defaults.registerLimitPerMinute, 0, 1_000_000),
  trustProxy: Config.string("CONCLAVE_TRUST_PROXY").pipe(
    Config.withDefault(""),
    Config.mapOrFail((raw) =>
      Either.mapLeft(
        checkTrustProxy(split(raw)),
        (message) =>
          ConfigError.InvalidData(["CONCLAVE_TRUST_PROXY"], message.replace("--trust-proxy", "CONCLAVE_TRUST_PROXY"))
      )
    )
  ),
  nodeId: Config.string("CONCLAVE_NODE_ID").pipe(
    Config.withDefault(defaults.nodeId),
    Config.validate({
      message: "CONCLAVE_NODE_ID: expected 1–64 characters of [A-Za-z0-9._-]",
      validation: (id) => /^[A-Za-z0-9._-]{1,64}$/.test(id)
    })
  )
}).pipe(
  Config.map(({ bind, ...rest }): ServerConfigShape => make({ host: bind.host, port: bind.port, ...rest }))
)

/**
 * `ServerConfig` read through `config` (the environment by default); `overrides` win over what it
 * reads.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  overrides: Partial<ServerConfigShape> = {}
): Layer.Layer<ServerConfig, ConfigError.ConfigError> =>
  Layer.effect(ServerConfig, Effect.map(config, (read) => ({ ...read, ...overrides })))
