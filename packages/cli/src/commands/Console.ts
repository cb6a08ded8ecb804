/**
 * `conclave console [--server URL]` (D-51): from an enrolled machine, ask the server for a single-use
 * enrollment code and print the web console's link with it, `http(s)://HOST/console/#enroll=CODE`.
 *
 * @since 0.1.0
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { CliError } from "../CliError.js"
import * as Ctx from "../Context.js"
import * as Flags from "../Flags.js"
import * as Output from "../Output.js"
import * as Remote from "../Remote.js"

/**
 * The console's page on the server a `ws(s)://` URL names, with the code in the fragment (which
 * browsers never send to a server).
 *
 * @since 0.1.0
 * @category links
 */
export const consoleLink = (serverUrl: string, code: string): string => {
  const url = new URL(serverUrl)
  const scheme = url.protocol === "wss:" ? "https:" : "http:"
  return `${scheme}//${url.host}/console/#enroll=${code}`
}

/** The server: `--server`, else the one registered in config.toml. @since 0.1.0 @category servers */
export const resolveServer = (server: Option.Option<string>) =>
  Option.match(server, {
    onSome: Ctx.parseUrl,
    onNone: () =>
      Effect.flatMap(Ctx.loadConfig, (config) => {
        if (config.servers.length === 1) return Effect.succeed(config.servers[0]!.url)
        return Effect.fail(
          new CliError({
            message: config.servers.length === 0
              ? "no server registered: pass --server URL (or run `conclave register` first)"
              : `several servers registered (${
                config.servers.map((s) => s.url).join(", ")
              }): pass --server URL to pick one`
          })
        )
      })
  })

/** `conclave console`. @since 0.1.0 @category commands */
export const consoleCommand = Command.make(
  "console",
  { server: Flags.server.pipe(Options.optional), json: Flags.json },
  (args) =>
    Effect.gen(function*() {
      const url = yield* resolveServer(args.server)
      const reply = yield* Remote.withSession(url, (conn) =>
        Remote.call(conn, { type: "enroll_create" }, "enrollment", "console enrollment refused"))
      const link = consoleLink(url, reply.code)
      if (args.json) {
        return yield* Output.json({ url: link, expires_at: reply.expires_at })
      }
      yield* Output.line(link)
      yield* Output.note(
        `open it in the browser to sign in: single use, valid until ${reply.expires_at}; the browser becomes one of your machines (browser-N)`
      )
    })
).pipe(
  Command.withDescription(
    "Print a single-use link (valid 10 minutes) that signs a browser in to the server's web console as one of your machines."
  )
)
