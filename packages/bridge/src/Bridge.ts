/**
 * `conclave bridge` as one Effect program (SPEC §4.1, §4.14): load the key and config, pick the
 * session handle and the servers, serve MCP on stdio, run one link per server, and stop when stdin
 * ends (or the fiber is interrupted by SIGINT/SIGTERM).
 *
 * @since 0.1.0
 */
import { Identity, LocalConfig, Url } from "@conclave/client"
import { Limits, Names } from "@conclave/protocol"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Path from "node:path"
import type { Readable, Writable } from "node:stream"
import * as Dispatcher from "./Dispatcher.js"
import * as HookServer from "./HookServer.js"
import * as HookWire from "./HookWire.js"
import * as Inbox from "./Inbox.js"
import * as Link from "./Link.js"
import * as Mcp from "./Mcp.js"
import { McpOutbound, type NotificationSink } from "./Ports.js"
import * as Tools from "./Tools.js"

/** @since 0.1.0 @category constants */
export const VERSION = "0.1.0"

/** A reason the bridge cannot start; `message` is what the user sees. @since 0.1.0 @category errors */
export class StartupError extends Data.TaggedError("BridgeStartupError")<{ readonly message: string }> {}

const loopLimitOf = (options: BridgeOptions, config: LocalConfig.LocalConfig): number =>
  Option.getOrElse(options.loopLimit, () => config.loop_limit ?? Limits.DEFAULT_LOOP_LIMIT)

const validLoopLimit = (limit: number): boolean => Number.isSafeInteger(limit) && limit >= 0

const checkLoopLimit = (limit: number): Effect.Effect<void, StartupError> =>
  validLoopLimit(limit)
    ? Effect.void
    : Effect.fail(new StartupError({ message: `invalid loop limit \`${limit}\` (expected an integer ≥ 0)` }))

/** Tell the client the tool list changed (the degraded bridge offered only `whoami`). */
const McpOutboundToolsChanged = (ports: Layer.Layer<NotificationSink | McpOutbound>) =>
  Effect.flatMap(McpOutbound, (o) => o.toolListChanged).pipe(Effect.provide(ports))

/** @since 0.1.0 @category constants */
export const NO_SERVER = "no known server to connect to (register one first, or pass --server)"

/** @since 0.1.0 @category models */
export interface BridgeOptions {
  readonly configDir: string
  /** `--server` values (repeatable); empty = every registration. */
  readonly servers: ReadonlyArray<string>
  /** `--as`. */
  readonly handle: Option.Option<string>
  /** `--loop-limit`. */
  readonly loopLimit: Option.Option<number>
  readonly cwd: string
  readonly stdin?: Readable
  readonly stdout?: Writable
  /** Replaces the MCP notification sink (SPEC §4.4 step 5). */
  readonly sink?: Layer.Layer<NotificationSink>
  readonly connect?: Link.Connect
  /**
   * Serve `conclave hook claude` on a Unix socket under the config directory (D-52); the `conclave
   * bridge` verb turns it on. Off by default so that bridges run inside one test process do not
   * share a socket name.
   */
  readonly hookSocket?: boolean
}

/**
 * The defaulted handle: the working directory's last component, or `session` (SPEC §1.2). Characters
 * a handle may not contain (D-15) become `-`, and it is cut to 64 characters.
 *
 * @since 0.1.0
 * @category handles
 */
export const defaultHandle = (cwd: string): string => {
  const base = Path.basename(cwd)
  const cleaned = [...base.replace(/[\s\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Zs}/]/gu, "-")].slice(0, Limits.NAME_MAX_LENGTH).join(
    ""
  )
  return cleaned === "" ? "session" : cleaned
}

/**
 * The registrations to link: those whose (normalized) URL equals a `--server` value, else all.
 * Registrations whose URLs normalize to the same text are linked once (the first wins): two links
 * to one URL would supersede each other forever.
 *
 * @since 0.1.0
 * @category selection
 */
export const selectServers = (
  config: LocalConfig.LocalConfig,
  wanted: ReadonlyArray<string>
): { readonly selected: ReadonlyArray<LocalConfig.Registration>; readonly unknown: ReadonlyArray<string> } => {
  const norm = (u: string) => Url.normalizeOrSelf(u)
  const seen = new Set<string>()
  const unique = config.servers.filter((r) => {
    const url = norm(r.url)
    if (seen.has(url)) return false
    seen.add(url)
    return true
  })
  if (wanted.length === 0) return { selected: unique, unknown: [] }
  const targets = new Set(wanted.map(norm))
  return {
    selected: unique.filter((r) => targets.has(norm(r.url))),
    unknown: wanted.filter((w) => !seen.has(norm(w)))
  }
}

/** What stops the bridge from linking, with the fix: shown in MCP `instructions`, `whoami` and tool errors. */
interface Ready {
  readonly identity: Identity.Identity
  readonly config: LocalConfig.LocalConfig
  readonly selected: ReadonlyArray<LocalConfig.Registration>
}

/**
 * Load the key and the config and select the servers; a left is the reason the bridge cannot link
 * yet, phrased with its fix (issue 23, item 4).
 */
const prepare = (options: BridgeOptions): Effect.Effect<Either.Either<Ready, string>> =>
  Effect.gen(function*() {
    const identity = yield* Identity.load(options.configDir).pipe(Effect.either)
    if (Either.isLeft(identity)) {
      const e = identity.left
      return Either.left(
        e._tag === "KeyMissing"
          ? `no machine key at \`${e.path}\`: run \`conclave register --server ws://HOST:4390 --username NAME\` in a terminal (it creates the key; \`conclave key\` only creates one)`
          : e.message
      )
    }
    const config = yield* LocalConfig.load(options.configDir).pipe(Effect.either)
    if (Either.isLeft(config)) return Either.left(config.left.message)
    const { selected, unknown } = selectServers(config.right, options.servers)
    for (const u of unknown) {
      yield* Effect.logWarning("--server does not match any registration; ignored").pipe(
        Effect.annotateLogs({ server: u })
      )
    }
    if (selected.length === 0) {
      const where = options.servers.length > 0 ? ` matching ${options.servers.join(", ")}` : ""
      return Either.left(
        `${NO_SERVER}: this machine has no registration${where} in \`${
          LocalConfig.configPath(options.configDir)
        }\`; run \`conclave register --server ws://HOST:4390 --username NAME\` in a terminal`
      )
    }
    return Either.right({ identity: identity.right, config: config.right, selected })
  })

/** How often a degraded bridge looks again for its key and registrations. */
const RETRY_DEGRADED_MS = 2_000

/** A dispatcher that only explains why nothing works yet (issue 23, item 4). */
const degradedDispatcher = (reason: () => string): Dispatcher.Dispatcher => {
  const whoami = Tools.offered({ send: false, whisper: false, admin: false }).filter((t) => t.name === "whoami")
  return {
    currentHandle: Effect.succeed(""),
    listTools: Effect.succeed(whoami),
    callTool: (name) =>
      Effect.sync(() =>
        name === "whoami"
          ? { text: `conclave is not connected: ${reason()}`, isError: false }
          : { text: `conclave is not connected: ${reason()}`, isError: true }
      ),
    permissionRequest: () => Effect.void,
    linkUp: () => Effect.void,
    linkDown: () => Effect.void,
    handlesInUse: () => Effect.void,
    linkFailed: () => Effect.void,
    linkDuplicate: () => Effect.void,
    inbound: () => Effect.void,
    joined: () => Effect.succeed([]),
    isUp: () => Effect.succeed(false)
  }
}

/** Delegates to whichever dispatcher is current: the degraded one until the bridge can link. */
const swappable = (initial: Dispatcher.Dispatcher) => {
  let current = initial
  const proxy: Dispatcher.Dispatcher = {
    currentHandle: Effect.suspend(() => current.currentHandle),
    listTools: Effect.suspend(() => current.listTools),
    callTool: (name, args) => Effect.suspend(() => current.callTool(name, args)),
    permissionRequest: (params) => Effect.suspend(() => current.permissionRequest(params)),
    linkUp: (server, connection, handle) => Effect.suspend(() => current.linkUp(server, connection, handle)),
    linkDown: (server, cause) => Effect.suspend(() => current.linkDown(server, cause)),
    handlesInUse: (server, taken) => Effect.suspend(() => current.handlesInUse(server, taken)),
    linkFailed: (server, text) => Effect.suspend(() => current.linkFailed(server, text)),
    linkDuplicate: (server, canonical) => Effect.suspend(() => current.linkDuplicate(server, canonical)),
    inbound: (server, frame) => Effect.suspend(() => current.inbound(server, frame)),
    joined: (server) => Effect.suspend(() => current.joined(server)),
    isUp: (server) => Effect.suspend(() => current.isUp(server))
  }
  return { proxy, set: (next: Dispatcher.Dispatcher) => Effect.sync(() => void (current = next)) }
}

/**
 * Run the bridge until stdin ends. Without a key or a registration it still serves MCP, degraded:
 * the reason and the fix are in the `instructions` and in `whoami`, every other tool fails with
 * them, and it looks again every 2 s, linking as soon as `conclave register` has run (issue 23).
 *
 * @since 0.1.0
 * @category running
 */
export const run = (options: BridgeOptions): Effect.Effect<void, StartupError> =>
  Effect.gen(function*() {
    let handle: Dispatcher.HandleOptions
    if (Option.isSome(options.handle)) {
      const problem = Names.nameProblem(options.handle.value)
      if (problem !== undefined) {
        return yield* new StartupError({ message: `invalid session handle \`${options.handle.value}\`: ${problem}` })
      }
      handle = { name: options.handle.value, explicit: true }
    } else {
      handle = { name: defaultHandle(options.cwd), explicit: false }
    }
    if (Option.isSome(options.loopLimit)) yield* checkLoopLimit(options.loopLimit.value)
    const first = yield* prepare(options)
    if (Either.isRight(first)) {
      yield* checkLoopLimit(loopLimitOf(options, first.right.config))
    }

    yield* Effect.scoped(Effect.gen(function*() {
      let reason = Either.isLeft(first) ? first.left : ""
      const server = Mcp.makeServer(
        VERSION,
        Either.isLeft(first) ? `${Mcp.INSTRUCTIONS}\n\nconclave is NOT connected: ${first.left}` : Mcp.INSTRUCTIONS
      )
      const ports = Layer.merge(options.sink ?? Mcp.sinkLayer(server), Mcp.outboundLayer(server))
      const dispatcher = swappable(degradedDispatcher(() => reason))
      // One inbox for the session: the live dispatcher fills it, the `inbox` tool and the hook take from it.
      const inbox = yield* Inbox.make
      if (options.hookSocket === true) {
        yield* HookServer.serve({
          configDir: options.configDir,
          inbox,
          clientPid: HookWire.clientPid(process.env, process.ppid)
        }).pipe(
          Effect.catchAll((e) =>
            Effect.logWarning("no hook socket: `conclave hook claude` will not see this session").pipe(
              Effect.annotateLogs({ path: e.path, error: String(e.cause) })
            )
          )
        )
      }
      yield* Mcp.install(server, dispatcher.proxy)
      const stdinDone = yield* Mcp.serveStdio(server, options.stdin, options.stdout)

      const start = (ready: Ready) =>
        Effect.gen(function*() {
          const loopLimit = loopLimitOf(options, ready.config)
          const live = yield* Dispatcher.make({
            servers: ready.selected,
            handle,
            policy: ready.config,
            loopLimit,
            permissionRelay: ready.config.permission_relay !== false,
            inbox
          }).pipe(Effect.provide(ports))
          yield* dispatcher.set(live)
          const claims = Link.makeClaims()
          for (const r of ready.selected) {
            yield* Effect.forkScoped(Link.run({
              url: Either.getOrElse(Url.normalize(r.url), () => r.url),
              identity: ready.identity,
              dispatcher: live,
              claims,
              probeHandles: !handle.explicit && options.connect === undefined,
              ...(options.connect === undefined ? {} : { connect: options.connect })
            }))
          }
          yield* Effect.logInfo("bridge started").pipe(
            Effect.annotateLogs({ handle: handle.name, servers: ready.selected.length, loopLimit })
          )
        })

      if (Either.isRight(first)) {
        yield* start(first.right)
      } else {
        yield* Effect.logWarning("bridge started degraded; retrying in the background").pipe(
          Effect.annotateLogs({ reason })
        )
        // Look again until the key and a registration are there, then link and say so.
        yield* Effect.gen(function*() {
          for (;;) {
            yield* Effect.sleep(RETRY_DEGRADED_MS)
            const again = yield* prepare(options)
            if (Either.isLeft(again)) {
              reason = again.left
              continue
            }
            const limit = loopLimitOf(options, again.right.config)
            if (!validLoopLimit(limit)) {
              reason = `invalid loop limit \`${limit}\` in config.toml (expected an integer ≥ 0)`
              continue
            }
            yield* start(again.right)
            yield* McpOutboundToolsChanged(ports)
            return
          }
        }).pipe(Effect.forkScoped)
      }
      yield* stdinDone
      yield* Effect.logInfo("stdin closed; stopping")
    }))
  }).pipe(Effect.annotateLogs({ actor: "Bridge" }))
