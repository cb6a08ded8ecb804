/**
 * `conclave serve` (SPEC §3.1, DECISIONS D-9, D-10, D-13, D-15, D-19): run the central server until
 * SIGINT/SIGTERM, which drains it (sessions get `shutdown` and close 1001) and exits 0.
 *
 * @since 0.1.0
 */
import * as Directory from "@conclave/client/Directory"
import { consoleDir } from "@conclave/console/assets"
import { Auth, Limits } from "@conclave/protocol"
import * as Admins from "@conclave/server/Admins"
import * as ConsoleAssets from "@conclave/server/ConsoleAssets"
import * as ServerConfig from "@conclave/server/ServerConfig"
import type { Store, StoreError } from "@conclave/server/Store"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { CliError } from "../CliError.js"

const withEnv = <A>(option: Options.Options<A>, config: Config.Config<A>) =>
  option.pipe(Options.withFallbackConfig(config))

const bind = withEnv(Options.text("bind"), Config.string("CONCLAVE_BIND")).pipe(
  Options.withDefault(Limits.DEFAULT_BIND),
  Options.withPseudoName("ADDR"),
  Options.withDescription("Listen address host:port (env CONCLAVE_BIND; default 0.0.0.0:4390).")
)
const dataDir = Options.text("data-dir").pipe(
  Options.withPseudoName("PATH"),
  Options.withDescription(
    "Directory of the embedded store, created if missing (env CONCLAVE_DATA_DIR; default $XDG_DATA_HOME/conclave or ~/.local/share/conclave)."
  ),
  Options.optional
)
const ephemeral = Options.boolean("ephemeral").pipe(
  Options.withDescription("Use a throwaway in-memory store (mutually exclusive with --data-dir).")
)
const storeUrl = withEnv(Options.text("store"), Config.string("CONCLAVE_STORE")).pipe(
  Options.withPseudoName("URL"),
  Options.withDescription(
    "The store: sqlite:PATH, memory: or postgres://user@host:port/db (env CONCLAVE_STORE; default sqlite: in the data directory)."
  ),
  Options.optional
)
const brokerUrl = withEnv(Options.text("broker"), Config.string("CONCLAVE_BROKER")).pipe(
  Options.withPseudoName("URL"),
  Options.withDescription(
    "The broker between nodes: memory: or nats://host:port (env CONCLAVE_BROKER; default memory:)."
  ),
  Options.optional
)
const nodeId = withEnv(Options.text("node-id"), Config.string("CONCLAVE_NODE_ID")).pipe(
  Options.withPseudoName("ID"),
  Options.withDescription("This node's name in /status (env CONCLAVE_NODE_ID; default <hostname>-<pid>)."),
  Options.optional
)
const heartbeatMs = withEnv(Options.integer("heartbeat-ms"), Config.integer("CONCLAVE_HEARTBEAT_MS")).pipe(
  Options.withDefault(ServerConfig.DEFAULT_HEARTBEAT_MS),
  Options.withPseudoName("MS"),
  Options.withDescription(
    `How often this node renews its sessions' presence lease with the other nodes, in ms; a dead node's sessions leave who within three intervals (env CONCLAVE_HEARTBEAT_MS; default ${ServerConfig.DEFAULT_HEARTBEAT_MS}; ${ServerConfig.MIN_HEARTBEAT_MS}..${ServerConfig.MAX_HEARTBEAT_MS}; the same on every node).`
  )
)
const natsPrefix = withEnv(Options.text("nats-prefix"), Config.string("CONCLAVE_NATS_PREFIX")).pipe(
  Options.withPseudoName("PREFIX"),
  Options.withDescription(
    "NATS subject prefix of this deployment, dot-separated tokens of A-Z a-z 0-9 _ - (env CONCLAVE_NATS_PREFIX; default conclave; needs --broker nats://; the same on every node)."
  ),
  Options.optional
)
const admin = Options.text("admin").pipe(
  Options.withPseudoName("USER[=PUBKEY]"),
  Options.withDescription(
    "Server admin; pin the name to a base64url key with USER=PUBKEY. Repeatable; comma lists allowed (env CONCLAVE_ADMINS)."
  ),
  Options.repeated
)
const noConsole = Options.boolean("no-console").pipe(
  Options.withDescription("Do not serve the web console at /console/ (D-51).")
)
const consoleOrigin = Options.text("console-origin").pipe(
  Options.withPseudoName("ORIGIN"),
  Options.withDescription(
    "Another origin (scheme://host[:port]) whose pages may open WebSockets to this server; by default only the server's own. Repeatable."
  ),
  Options.repeated
)
const publicUrl = Options.text("public-url").pipe(
  Options.withPseudoName("URL"),
  Options.withDescription("A URL clients dial this server at (its host is accepted in signed handshakes). Repeatable."),
  Options.repeated
)
const trustProxy = Options.text("trust-proxy").pipe(
  Options.withPseudoName("CIDR"),
  Options.withDescription(
    "A reverse proxy (address or CIDR block) whose X-Forwarded-For names the client address per-address limits count under. Repeatable; comma lists allowed (env CONCLAVE_TRUST_PROXY)."
  ),
  Options.repeated
)
const integer = (name: string, env: string, fallback: number, description: string) =>
  withEnv(Options.integer(name), Config.integer(env)).pipe(
    Options.withDefault(fallback),
    Options.withPseudoName("N"),
    Options.withDescription(`${description} (env ${env}; default ${fallback}).`)
  )
const maxFrameBytes = integer(
  "max-frame-bytes",
  "CONCLAVE_MAX_FRAME_BYTES",
  Limits.DEFAULT_MAX_FRAME_BYTES,
  "WebSocket message cap in bytes"
)
const maxBodyBytes = integer(
  "max-body-bytes",
  "CONCLAVE_MAX_BODY_BYTES",
  Limits.DEFAULT_MAX_BODY_BYTES,
  "Message body cap in UTF-8 bytes"
)
const rate = withEnv(Options.float("rate"), Config.number("CONCLAVE_RATE")).pipe(
  Options.withDefault(Limits.DEFAULT_RATE_PER_SECOND),
  Options.withPseudoName("N"),
  Options.withDescription("Messages + whispers per second per session, refilled (env CONCLAVE_RATE; 0 = unlimited).")
)
const burst = integer("burst", "CONCLAVE_BURST", Limits.DEFAULT_RATE_BURST, "Rate-limit burst per session")
const maxPendingPerIp = integer(
  "max-pending-per-ip",
  "CONCLAVE_MAX_PENDING_PER_IP",
  Limits.DEFAULT_MAX_PENDING_PER_IP,
  "Connections still in the handshake per remote address (0 = unlimited)"
)
const registerLimit = integer(
  "register-limit",
  "CONCLAVE_REGISTER_LIMIT",
  Limits.DEFAULT_REGISTER_LIMIT_PER_MINUTE,
  "Register attempts per remote address per minute (0 = unlimited)"
)

const fail = (message: string) => Effect.fail(new CliError({ message }))

/** Parse `--bind` (`host:port`, `[v6]:port`; an empty host is every interface). @since 0.1.0 @category parsing */
export const parseBind = ServerConfig.parseBind

/** The per-user data directory (D-13). @since 0.1.0 @category paths */
export const defaultDataDir = Effect.gen(function*() {
  const xdg = yield* Config.option(Config.string("XDG_DATA_HOME"))
  const home = yield* Config.option(Config.string("HOME"))
  const configured = Option.filter(xdg, (d) => d.trim().length > 0 && Path.isAbsolute(d))
  if (Option.isSome(configured)) return Path.join(configured.value, "conclave")
  const homeDir = Option.getOrElse(Option.filter(home, (h) => h.length > 0), () => Os.homedir())
  if (process.platform === "darwin") return Path.join(homeDir, "Library", "Application Support", "conclave")
  return Path.join(homeDir, ".local", "share", "conclave")
}).pipe(Effect.orElseSucceed(() => Path.join(Os.homedir(), ".local", "share", "conclave")))

const errnoText = (cause: unknown): string => {
  const code = typeof cause === "object" && cause !== null && "code" in cause ? String(cause.code) : undefined
  switch (code) {
    case "ENOENT":
      return "a parent directory does not exist and cannot be created there"
    case "EACCES":
    case "EPERM":
      return "permission denied"
    case "EROFS":
      return "read-only file system"
    case "ENOTDIR":
      return "a component of the path is not a directory"
    default:
      return cause instanceof Error ? cause.message : String(cause)
  }
}

/**
 * Create `dir` and its missing parents (`Directory.makeSync`: never Node's recursive `mkdir`, which
 * spins forever under `/proc`, issue 23 item 1) and check that it is writable; `failure` words the
 * error for the flag that named it.
 *
 * @since 0.1.0
 * @category paths
 */
export const ensureDirectory = (
  dir: string,
  failure: (reason: string) => string = (reason) =>
    `cannot create data directory \`${dir}\` (${reason}): pass a writable directory with --data-dir (or CONCLAVE_DATA_DIR), or use --ephemeral`
): Effect.Effect<void, CliError> =>
  Effect.try({
    try: () => {
      Directory.makeSync(dir)
      Fs.accessSync(dir, Fs.constants.W_OK | Fs.constants.X_OK)
    },
    catch: (cause) => new CliError({ message: failure(errnoText(cause)), cause })
  })

const checkRange = (flag: string, value: number, min: number, max: number) =>
  value >= min && value <= max ? Effect.void : fail(`invalid --${flag} ${value}: expected ${min}..${max}`)

// OpenTelemetry is loaded only when export is asked for (cold start). Without an exporter spans
// would go nowhere: tracing is switched off, so every span is a cheap no-op on the request path.
const telemetry = Layer.unwrapEffect(
  Config.option(Config.string("CONCLAVE_OTLP_ENDPOINT")).pipe(
    Effect.orElseSucceed(() => Option.none<string>()),
    Effect.flatMap((endpoint) =>
      Option.isNone(endpoint)
        ? Effect.succeed(Layer.setTracerEnabled(false))
        : Effect.promise(() => import("@conclave/server/Telemetry")).pipe(Effect.map((t) => t.layer))
    )
  )
)

/** @since 0.1.0 @category commands */
export const serve = Command.make(
  "serve",
  {
    bind,
    dataDir,
    ephemeral,
    storeUrl,
    brokerUrl,
    nodeId,
    heartbeatMs,
    natsPrefix,
    admin,
    publicUrl,
    noConsole,
    consoleOrigin,
    maxFrameBytes,
    maxBodyBytes,
    rate,
    burst,
    maxPendingPerIp,
    registerLimit,
    trustProxy
  },
  (flags) =>
    Effect.gen(function*() {
      if (flags.ephemeral && Option.isSome(flags.dataDir)) {
        return yield* fail("--data-dir and --ephemeral are mutually exclusive: pick one")
      }
      if (Option.isSome(flags.storeUrl) && (flags.ephemeral || Option.isSome(flags.dataDir))) {
        return yield* fail("--store, --data-dir and --ephemeral are mutually exclusive: pick one")
      }
      if (Option.isSome(flags.nodeId) && !/^[A-Za-z0-9._-]{1,64}$/.test(flags.nodeId.value)) {
        return yield* fail(`invalid --node-id \`${flags.nodeId.value}\`: expected 1–64 characters of A-Z a-z 0-9 . _ -`)
      }
      const broker = Option.getOrElse(flags.brokerUrl, () => "memory:")
      if (broker !== "memory:" && !/^nats:\/\/[^\s/]+/.test(broker)) {
        return yield* fail(`invalid --broker \`${broker}\`: expected memory: or nats://host:port`)
      }
      yield* checkRange(
        "heartbeat-ms",
        flags.heartbeatMs,
        ServerConfig.MIN_HEARTBEAT_MS,
        ServerConfig.MAX_HEARTBEAT_MS
      )
      const prefix = Option.getOrUndefined(flags.natsPrefix)
      if (prefix !== undefined && broker === "memory:") {
        return yield* fail(
          `--nats-prefix \`${prefix}\` needs --broker nats://host:port (the memory broker has no subjects)`
        )
      }
      if (prefix !== undefined && !ServerConfig.isNatsPrefix(prefix)) {
        return yield* fail(
          `invalid --nats-prefix \`${prefix}\`: expected 1–128 characters of dot-separated tokens of A-Z a-z 0-9 _ - (e.g. conclave.team1)`
        )
      }
      const address = parseBind(flags.bind)
      if (Either.isLeft(address)) return yield* fail(address.left)
      yield* checkRange("max-frame-bytes", flags.maxFrameBytes, 1024, Limits.MAX_FRAME_BYTES_CEILING)
      yield* checkRange("max-body-bytes", flags.maxBodyBytes, 1, Limits.MAX_FRAME_BYTES_CEILING)
      yield* checkRange("rate", flags.rate, 0, 1_000_000)
      yield* checkRange("burst", flags.burst, 1, 1_000_000)
      yield* checkRange("max-pending-per-ip", flags.maxPendingPerIp, 0, 1_000_000)
      yield* checkRange("register-limit", flags.registerLimit, 0, 1_000_000)

      // The env fallback of a repeatable option does not fire (STACK.md): read it here.
      const envAdmins = yield* Config.option(Config.string("CONCLAVE_ADMINS")).pipe(Effect.orElseSucceed(Option.none))
      const specs = flags.admin.length > 0 ? flags.admin : Option.toArray(envAdmins)
      const admins = Admins.parse(specs)
      if (Either.isLeft(admins)) return yield* fail(admins.left.message)

      const envTrustProxy = yield* Config.option(Config.string("CONCLAVE_TRUST_PROXY")).pipe(
        Effect.orElseSucceed(Option.none)
      )
      const trusted = ServerConfig.checkTrustProxy(
        (flags.trustProxy.length > 0 ? flags.trustProxy : Option.toArray(envTrustProxy))
          .flatMap((v) => v.split(",")).map((v) => v.trim()).filter((v) => v.length > 0)
      )
      if (Either.isLeft(trusted)) return yield* fail(trusted.left)

      for (const url of flags.publicUrl) {
        if (Auth.authorityOf(url) === undefined) return yield* fail(`invalid --public-url \`${url}\`: not a URL`)
      }
      for (const origin of flags.consoleOrigin) {
        if (ConsoleAssets.normalizeOrigin(origin) === undefined) {
          return yield* fail(`invalid --console-origin \`${origin}\`: expected scheme://host[:port] (http or https)`)
        }
      }

      const envDataDir = yield* Config.option(Config.string("CONCLAVE_DATA_DIR")).pipe(
        Effect.orElseSucceed(Option.none)
      )
      // The server's modules are loaded once the flags are known good (a bad start fails fast), and
      // PostgreSQL's and NATS's only when asked for: the embedded default starts without them.
      const SqliteStore = () => Effect.promise(() => import("@conclave/server/SqliteStore"))
      let store: Layer.Layer<Store, StoreError>
      const url = Option.getOrUndefined(flags.storeUrl)
      if (url !== undefined && /^postgres(ql)?:\/\//.test(url)) {
        const PgStore = yield* Effect.promise(() => import("@conclave/server/PgStore"))
        yield* Effect.logInfo("using the PostgreSQL store")
        store = PgStore.layer({ url })
      } else if (url === "memory:" || (url === undefined && flags.ephemeral)) {
        yield* Effect.logInfo("using an ephemeral in-memory store (nothing survives a restart)")
        store = (yield* SqliteStore()).layerMemory
      } else if (url !== undefined && !url.startsWith("sqlite:")) {
        return yield* fail(`invalid --store \`${url}\`: expected sqlite:PATH, memory: or postgres://user@host:port/db`)
      } else if (url !== undefined) {
        const file = Path.resolve(url.slice("sqlite:".length))
        if (file === Path.resolve("")) return yield* fail(`invalid --store \`${url}\`: sqlite: needs a file path`)
        // (not `mkdirSync(…, { recursive: true })`: it spins forever under /proc, issue 23 item 1)
        yield* ensureDirectory(
          Path.dirname(file),
          (reason) =>
            `cannot create the directory of \`${file}\` (${reason}): pass a writable path with --store sqlite:PATH, or use --ephemeral`
        )
        yield* Effect.logInfo("using the SQLite store").pipe(Effect.annotateLogs({ path: file }))
        store = (yield* SqliteStore()).layer({ filename: file })
      } else {
        const dir = Path.resolve(
          Option.getOrElse(
            Option.orElse(flags.dataDir, () => Option.filter(envDataDir, (d) => d.length > 0)),
            () => ""
          ) || (yield* defaultDataDir)
        )
        yield* ensureDirectory(dir)
        yield* Effect.logInfo("using data directory").pipe(Effect.annotateLogs({ path: dir }))
        store = (yield* SqliteStore()).layer({ filename: Path.join(dir, "conclave.db") })
      }

      const config = ServerConfig.layer({
        host: address.right.host,
        port: address.right.port,
        publicUrls: flags.publicUrl,
        admins: admins.right,
        maxFrameBytes: flags.maxFrameBytes,
        maxBodyBytes: flags.maxBodyBytes,
        ratePerSecond: flags.rate,
        rateBurst: flags.burst,
        maxPendingPerIp: flags.maxPendingPerIp,
        registerLimitPerMinute: flags.registerLimit,
        trustProxy: trusted.right,
        consoleDir: flags.noConsole ? null : consoleDir,
        consoleOrigins: flags.consoleOrigin,
        heartbeatInterval: Duration.millis(flags.heartbeatMs),
        ...(Option.isSome(flags.nodeId) ? { nodeId: flags.nodeId.value } : {})
      })
      const brokerLayer = broker === "memory:"
        ? (yield* Effect.promise(() => import("@conclave/server/Broker"))).layerMemory
        : yield* Effect.promise(() => import("@conclave/server/NatsBroker")).pipe(
          Effect.map((Nats) => Nats.layer(prefix === undefined ? { url: broker } : { url: broker, prefix }))
        )
      const ServerLive = yield* Effect.promise(() => import("@conclave/server/ServerLive"))
      const server = ServerLive.layerWithoutBroker.pipe(
        Layer.provide(brokerLayer),
        Layer.provide(config),
        Layer.provide(store)
      )
      yield* Effect.scoped(
        Effect.gen(function*() {
          yield* Layer.build(server)
          // Runs first when runMain interrupts us on SIGINT/SIGTERM, before the drain.
          yield* Effect.addFinalizer(() => Effect.logInfo("shutdown signal received"))
          return yield* Effect.never
        })
      ).pipe(Effect.provide(telemetry))
    })
).pipe(Command.withDescription("Run the central conclave server."))
