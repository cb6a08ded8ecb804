/**
 * `conclave demo` (D-32): an ephemeral in-process server on a free loopback port, two throwaway
 * identities in a temporary config dir, a channel conversation and a whisper, printed as a
 * transcript. Nothing outlives the command.
 *
 * @since 0.1.0
 */
import { Connection, Identity, LocalConfig } from "@conclave/client"
import { Errors, type Frames, Names } from "@conclave/protocol"
import * as Command from "@effect/cli/Command"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { chain, CliError } from "../CliError.js"
import { GlobalOptions } from "../GlobalOptions.js"
import * as Output from "../Output.js"
import { channelLine, whisperLine } from "./Tail.js"

const CHANNEL = "lobby"
const WAIT_MS = 10_000

interface Person {
  readonly name: string
  readonly machine: string
  readonly dir: string
  readonly conn: Connection.Connection
}

const fail = (what: string) => (e: unknown) => new CliError({ message: `${what}: ${chain(e)}`, cause: e })

const tempDir = Effect.acquireRelease(
  Effect.tryPromise({
    try: () => Fs.mkdtemp(Path.join(Os.tmpdir(), "conclave-demo-")),
    catch: fail("cannot create a temporary directory")
  }),
  (dir) => Effect.promise(() => Fs.rm(dir, { recursive: true, force: true })).pipe(Effect.ignore)
)

/** Wait (bounded) for the first unsolicited frame that `pick` accepts. */
const awaitFrame = <A>(
  conn: Connection.Connection,
  what: string,
  pick: (frame: Frames.ServerFrame) => Option.Option<A>
): Effect.Effect<A, CliError> =>
  conn.unsolicited.pipe(
    Stream.filterMap(pick),
    Stream.runHead,
    Effect.flatMap(Option.match({
      onNone: () => Effect.fail(new CliError({ message: `connection closed while waiting for ${what}` })),
      onSome: Effect.succeed
    })),
    Effect.timeoutFail({
      duration: WAIT_MS,
      onTimeout: () => new CliError({ message: `timed out waiting for ${what}` })
    })
  )

const textOf = (p: Frames.Payload) => (p.kind === "plain" ? p.text : "")

/**
 * The demo itself, given where to keep the throwaway config dirs. Exposed for tests.
 *
 * @since 0.1.0
 * @category demo
 */
export const runDemo = (root: string) =>
  Effect.gen(function*() {
    const out = yield* Output.Output
    // the server is loaded when the demo runs, not when the command tree is (every verb's cold start)
    const { ServerConfig, ServerLive, SqliteStore } = yield* Effect.promise(() => import("@conclave/server"))
    const serverLayer = ServerLive.ServerLive.pipe(
      Layer.provide(ServerConfig.layer({ host: "127.0.0.1", port: 0 })),
      Layer.provide(SqliteStore.layerMemory)
    )
    const context = yield* Layer.build(serverLayer).pipe(Effect.mapError(fail("cannot start the demo server")))
    const { url } = Context.get(context, ServerLive.ServerAddress)
    yield* out.line(`conclave demo: an ephemeral server at ${url} (in-memory store, gone when the demo ends)`)
    yield* out.line("")

    const enroll = (name: string, machine: string) =>
      Effect.gen(function*() {
        const dir = Path.join(root, name)
        const { identity } = yield* Identity.loadOrCreate(dir).pipe(Effect.mapError(fail("cannot create a key")))
        const conn = yield* Connection.connect({
          url,
          handle: "demo",
          client: "cli",
          identity,
          register: { username: name, machine }
        }).pipe(Effect.mapError(fail(`cannot register ${name}`)))
        yield* LocalConfig.save(
          dir,
          LocalConfig.upsertRegistration(LocalConfig.empty, { url, username: name, machine })
        )
          .pipe(Effect.mapError(fail("cannot write config.toml")))
        yield* out.line(`✓ registered ${Names.renderPath(conn.path)}  (config dir ${dir})`)
        return { name, machine, dir, conn } satisfies Person
      })

    const request = (p: Person, frame: Connection.RequestWithoutId) =>
      p.conn.request(frame).pipe(
        Effect.mapError((e) =>
          new CliError({ message: `${p.name}: ${e._tag === "Rejected" ? Errors.render(e.error) : e.message}` })
        )
      )

    const alice = yield* enroll("alice", "laptop")
    const bob = yield* enroll("bob", "desktop")

    yield* request(alice, { type: "admin", op: { kind: "create_channel", name: CHANNEL, visibility: "public" } })
    yield* out.line(`✓ alice created #${CHANNEL} (public)`)
    yield* request(alice, { type: "join", channel: CHANNEL, token: null })
    yield* request(bob, { type: "join", channel: CHANNEL, token: null })
    const presence = yield* request(bob, { type: "who", channel: CHANNEL })
    if (presence.type === "presence") {
      yield* out.line(`✓ both joined #${CHANNEL}; who: ${presence.sessions.map(Names.renderPath).join(", ")}`)
    }
    yield* out.line("")
    yield* out.line("--- transcript (as each receiver saw it) ---")

    const say = (from: Person, to: Person, text: string) =>
      Effect.gen(function*() {
        yield* request(from, {
          type: "channel_msg",
          channel: CHANNEL,
          payload: { kind: "plain", text },
          reply_to: null
        })
        const got = yield* awaitFrame(
          to.conn,
          `${to.name} to receive a message`,
          (f) => f.type === "channel_msg" && f.channel === CHANNEL ? Option.some(f) : Option.none()
        )
        yield* out.line(`${channelLine(got.channel, got.from, got.payload)}    (seen by ${to.name})`)
        return got
      })

    yield* say(alice, bob, "hi bob, the build on main is green")
    yield* say(bob, alice, "thanks alice, deploying now")

    const secret = "psst, just you: the staging password rotates at noon"
    yield* request(alice, { type: "whisper", target: bob.conn.path, payload: { kind: "plain", text: secret } })
    const whisper = yield* awaitFrame(
      bob.conn,
      "bob to receive the whisper",
      (f) => f.type === "whisper" ? Option.some(f) : Option.none()
    )
    yield* out.line(`${whisperLine(whisper.from, whisper.payload)}    (seen by bob only)`)

    const history = yield* request(bob, {
      type: "read_since",
      channel: CHANNEL,
      since_seq: 0,
      since_ms: null,
      before_seq: null
    })
    const stored = history.type === "history" ? history.messages.length : 0
    yield* out.line("--- end of transcript ---")
    yield* out.line("")
    yield* out.line(
      `✓ ${stored} channel message(s) were retained for catch-up; the whisper was delivered live and never stored (${
        textOf(whisper.payload) === secret ? "intact" : "altered"
      })`
    )
    yield* out.line("✓ demo finished: stopping the server and removing the throwaway identities")
    return { url, alice: alice.conn.path as Names.SessionPath, bob: bob.conn.path as Names.SessionPath }
  })

/** `conclave demo`. @since 0.1.0 @category commands */
export const demo = Command.make("demo", {}, () =>
  Effect.gen(function*() {
    const { verbose } = yield* GlobalOptions
    yield* Effect.scoped(
      Effect.flatMap(tempDir, (dir) => runDemo(dir)).pipe(
        verbose ? (e) => e : Logger.withMinimumLogLevel(LogLevel.Warning)
      )
    )
  })).pipe(
    Command.withDescription(
      "Start an ephemeral server, register two throwaway identities, exchange channel messages and a whisper, print the transcript."
    )
  )
