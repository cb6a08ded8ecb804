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
import * as Link from "./Link.js"
import * as Mcp from "./Mcp.js"
import type { NotificationSink } from "./Ports.js"

/** @since 0.1.0 @category constants */
export const VERSION = "0.1.0"

/** A reason the bridge cannot start; `message` is what the user sees. @since 0.1.0 @category errors */
export class StartupError extends Data.TaggedError("BridgeStartupError")<{ readonly message: string }> {}

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

/**
 * Run the bridge until stdin ends.
 *
 * @since 0.1.0
 * @category running
 */
export const run = (options: BridgeOptions): Effect.Effect<void, StartupError> =>
  Effect.gen(function*() {
    const identity = yield* Identity.load(options.configDir).pipe(
      Effect.mapError((e) =>
        new StartupError({
          message: e._tag === "KeyMissing"
            ? `no machine key at \`${e.path}\`: run \`conclave key\` and \`conclave register --server URL --username NAME\` first`
            : e.message
        })
      )
    )
    const config = yield* LocalConfig.load(options.configDir).pipe(
      Effect.mapError((e) => new StartupError({ message: e.message }))
    )
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
    const { selected, unknown } = selectServers(config, options.servers)
    for (const u of unknown) {
      yield* Effect.logWarning("--server does not match any registration; ignored").pipe(
        Effect.annotateLogs({ server: u })
      )
    }
    if (selected.length === 0) return yield* new StartupError({ message: NO_SERVER })
    const loopLimit = Option.getOrElse(options.loopLimit, () => config.loop_limit ?? Limits.DEFAULT_LOOP_LIMIT)
    if (!Number.isSafeInteger(loopLimit) || loopLimit < 0) {
      return yield* new StartupError({ message: `invalid loop limit \`${loopLimit}\` (expected an integer ≥ 0)` })
    }

    yield* Effect.scoped(Effect.gen(function*() {
      const server = Mcp.makeServer(VERSION)
      const ports = Layer.merge(options.sink ?? Mcp.sinkLayer(server), Mcp.outboundLayer(server))
      const dispatcher = yield* Dispatcher.make({
        servers: selected,
        handle,
        policy: config,
        loopLimit
      }).pipe(Effect.provide(ports))
      yield* Mcp.install(server, dispatcher)
      const stdinDone = yield* Mcp.serveStdio(server, options.stdin, options.stdout)
      const claims = Link.makeClaims()
      for (const r of selected) {
        yield* Effect.forkScoped(Link.run({
          url: Either.getOrElse(Url.normalize(r.url), () => r.url),
          identity,
          dispatcher,
          claims,
          probeHandles: !handle.explicit && options.connect === undefined,
          ...(options.connect === undefined ? {} : { connect: options.connect })
        }))
      }
      yield* Effect.logInfo("bridge started").pipe(
        Effect.annotateLogs({ handle: handle.name, servers: selected.length, loopLimit })
      )
      yield* stdinDone
      yield* Effect.logInfo("stdin closed; stopping")
    }))
  }).pipe(Effect.annotateLogs({ actor: "Bridge" }))
