/**
 * `conclave bridge [--server URL]... [--as HANDLE] [--loop-limit N]` (SPEC §4.1, §6.2, D-12).
 *
 * @since 0.1.0
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { CliError } from "../CliError.js"
import { configDir } from "../Context.js"

const server = Options.text("server").pipe(
  Options.withPseudoName("URL"),
  Options.repeated,
  Options.withDescription("Connect only to this registered server (repeatable; default: every registration).")
)
const handle = Options.text("as").pipe(
  Options.withPseudoName("HANDLE"),
  Options.optional,
  Options.withDescription("Session handle (default: the working directory's name; never renamed when given).")
)
const loopLimit = Options.integer("loop-limit").pipe(
  Options.withPseudoName("N"),
  Options.optional,
  Options.withDescription(
    "Consecutive agent messages in a channel before replies pause until a human posts (default 20; 0 = off)."
  )
)

/** @since 0.1.0 @category commands */
export const bridge = Command.make("bridge", { server, handle, loopLimit }, (o) =>
  Effect.gen(function*() {
    if (Option.isSome(o.loopLimit) && o.loopLimit.value < 0) {
      return yield* new CliError({
        message: `invalid value for \`--loop-limit\`: \`${o.loopLimit.value}\` (expected 0 or more)`
      })
    }
    const dir = yield* configDir
    const cwd = yield* Effect.sync(() => process.cwd())
    // Loaded on use: the MCP SDK and its schema stack are not needed by any other verb (cold start).
    const { Bridge } = yield* Effect.promise(() => import("@conclave/bridge"))
    yield* Bridge.run({
      configDir: dir,
      servers: o.server,
      handle: o.handle,
      loopLimit: o.loopLimit,
      cwd,
      hookSocket: true
    }).pipe(Effect.mapError((e) => new CliError({ message: e.message })))
  })).pipe(
    Command.withDescription(
      "Run the MCP stdio bridge (launched by Claude Code: `claude mcp add --scope local conclave -- conclave bridge`)."
    )
  )
