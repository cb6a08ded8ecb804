/**
 * Local permission policy (`perm set`, `perm show`) and `join` (SPEC §6.2, GAPS #24/#25).
 *
 * @since 0.1.0
 */
import { LocalConfig, type Permission, ToolArgs } from "@conclave/client"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Readline from "node:readline"
import { CliError } from "../CliError.js"
import * as Ctx from "../Context.js"
import * as Flags from "../Flags.js"
import * as Output from "../Output.js"
import * as Remote from "../Remote.js"

/** The lines of `perm show` (also the tail of `status`). @since 0.1.0 @category rendering */
export const permLines = (config: Permission.Policy): ReadonlyArray<string> => [
  `default: ${config.default_permission}`,
  ...config.overrides.map((o) => `${o.server} ${o.channel ?? "<whisper>"} -> ${o.level}`)
]

/** The JSON shape of the policy. @since 0.1.0 @category rendering */
export const permJson = (config: LocalConfig.LocalConfig) => ({
  default_permission: config.default_permission,
  overrides: config.overrides.map((o) => ({ server: o.server, channel: o.channel, level: o.level }))
})

/**
 * Ask on the terminal before a risky change (issue 23, item 7). Without a terminal on stdin (scripts,
 * tests, agents) there is no one to ask: the change goes ahead.
 */
const confirm = (question: string): Effect.Effect<void, CliError> =>
  process.stdin.isTTY !== true || process.stderr.isTTY !== true
    ? Effect.void
    : Effect.async<boolean>((resume) => {
      const rl = Readline.createInterface({ input: process.stdin, output: process.stderr })
      rl.question(question, (answer) => {
        rl.close()
        resume(Effect.succeed(/^y(es)?$/i.test(answer.trim())))
      })
      return Effect.sync(() => rl.close())
    }).pipe(
      Effect.flatMap((yes) => yes ? Effect.void : Effect.fail(new CliError({ message: "cancelled: nothing changed" })))
    )

/**
 * One round trip (issue 23, item 7): warn when the server lists no such channel, or cannot be
 * asked. The level is recorded either way (it is local, and the channel may come later).
 */
const warnUnknownChannel = (server: string, channel: string) =>
  Remote.withSession(server, (conn) => Remote.call(conn, { type: "list_channels" }, "channel_list")).pipe(
    Effect.flatMap((list) =>
      list.channels.some((c) => c.name === channel)
        ? Effect.void
        : Output.note(
          `warning: ${server} lists no channel #${channel} (a private channel shows only to its members); check the name with \`conclave channel list --server ${server}\``
        )
    ),
    Effect.catchAll((e) =>
      Output.note(
        `warning: could not check that #${channel} exists on ${server} (${e.message}); recording the level anyway`
      )
    )
  )

const permSet = Command.make(
  "set",
  {
    level: Args.text({ name: "LEVEL" }).pipe(
      Args.withSchema(Flags.LevelText),
      Args.withDescription("mute | notify | converse | act")
    ),
    server: Flags.server.pipe(Options.optional),
    channel: Options.text("channel").pipe(
      Options.map(ToolArgs.channelName),
      Options.withPseudoName("NAME"),
      Options.optional,
      Options.withDescription("Scope: this channel on --server.")
    ),
    whisper: Options.boolean("whisper").pipe(Options.withDescription("Scope: whispers on --server.")),
    json: Flags.json
  },
  (args) =>
    Effect.gen(function*() {
      const level = args.level
      let scope: { readonly server: string; readonly channel: string | null } | undefined
      if (Option.isSome(args.server)) {
        const hasChannel = Option.isSome(args.channel)
        if (hasChannel && args.whisper) {
          return yield* new CliError({ message: "`--channel` and `--whisper` are mutually exclusive" })
        }
        if (!hasChannel && !args.whisper) {
          return yield* new CliError({
            message:
              "`--server` needs an explicit scope: add `--channel NAME` or `--whisper` (run without `--server` to change the default)"
          })
        }
        const server = yield* Ctx.parseUrl(args.server.value)
        scope = { server, channel: Option.isSome(args.channel) ? args.channel.value : null }
      } else if (Option.isSome(args.channel) || args.whisper) {
        return yield* new CliError({ message: "`--channel` and `--whisper` require `--server URL`" })
      }
      if (scope !== undefined) {
        const config = yield* Ctx.loadConfig
        if (Option.isNone(LocalConfig.findRegistration(config, scope.server))) {
          yield* Output.note(
            `warning: no registration for ${scope.server} in config.toml, so no bridge connects there yet; register with \`conclave register --server ${scope.server} --username <you>\` (or check the URL)`
          )
        } else if (scope.channel !== null) yield* warnUnknownChannel(scope.server, scope.channel)
      }
      if (level === "act") {
        const where = scope === undefined ? "every channel and whisper without an override" : "this scope"
        yield* confirm(
          `\`act\` lets the agent answer and act on what others post in ${where} without asking you. Continue? [y/N] `
        )
      }
      yield* Ctx.updateConfig((c) =>
        scope === undefined ? LocalConfig.setDefault(c, level) : LocalConfig.setOverride(c, { ...scope, level })
      )
      const what = scope === undefined
        ? "default permission"
        : scope.channel === null
        ? `whispers on ${scope.server}`
        : `#${scope.channel} on ${scope.server}`
      if (args.json) {
        return yield* Output.json({
          scope: scope === undefined ? { default: true } : { server: scope.server, channel: scope.channel },
          level
        })
      }
      yield* Output.success(
        `${what} set to ${level}; applies to bridges started from now on (a running session changes levels live with its set_perm tool)`
      )
    })
).pipe(
  Command.withDescription(
    "Set a local permission level: the machine default (no flags), or with --server exactly one scope: --channel NAME or --whisper."
  )
)

const permShow = Command.make("show", { json: Flags.json }, (args) =>
  Effect.gen(function*() {
    const config = yield* Ctx.loadConfig
    if (args.json) return yield* Output.json(permJson(config))
    for (const l of permLines(config)) yield* Output.line(l)
  })).pipe(Command.withDescription("Show the local permission policy: the default, then each override in file order."))

/** @since 0.1.0 @category commands */
export const permCommands = [permSet, permShow] as const

/** `conclave perm`. @since 0.1.0 @category commands */
export const perm = Command.make("perm").pipe(
  Command.withDescription("Local permission levels (mute < notify < converse < act) for future bridges."),
  Command.withSubcommands(permCommands)
)

/** `conclave join`. @since 0.1.0 @category commands */
export const join = Command.make(
  "join",
  {
    server: Flags.server,
    channel: Args.text({ name: "CHANNEL" }).pipe(Args.withDescription("Channel to join.")),
    token: Options.text("token").pipe(
      Options.withPseudoName("TOKEN"),
      Options.optional,
      Options.withDescription("Invite token (private channels).")
    ),
    perm: Options.text("perm").pipe(
      Options.withPseudoName("LEVEL"),
      Options.withSchema(Flags.LevelText),
      Options.optional,
      Options.withDescription("Also set the local level for this channel (only after the join succeeds).")
    ),
    json: Flags.json
  },
  (args) =>
    Effect.gen(function*() {
      const level = args.perm
      const url = yield* Ctx.parseUrl(args.server)
      const joined = yield* Remote.withSession(url, (conn) =>
        Remote.call(
          conn,
          { type: "join", channel: args.channel, token: Option.getOrNull(args.token) },
          "joined",
          "join rejected"
        ))
      if (Option.isSome(level)) {
        yield* Ctx.updateConfig((c) =>
          LocalConfig.setOverride(c, { server: url, channel: joined.channel, level: level.value })
        )
      }
      yield* args.json
        ? Output.json({ joined: joined.channel, server: url, perm: Option.getOrNull(level) })
        : Output.success(`joined ${joined.channel}`)
      yield* Output.note(
        `note: this verified access${
          Option.isSome(level) ? ` and set the local level to ${level.value}` : ""
        }; a live Claude Code session subscribes with its join_channel tool (this one-shot session's subscription ended when it disconnected)`
      )
    })
).pipe(
  Command.withDescription(
    "Verify that you can join a channel (optionally with an invite token) and, on success only, record a local permission level for it."
  )
)
