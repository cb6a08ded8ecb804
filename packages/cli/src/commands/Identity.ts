/**
 * Identity and enrollment verbs (SPEC §6.2, D-29): `key`, `register`, `machine`, `server`.
 *
 * @since 0.1.0
 */
import { Connection, Identity, LocalConfig, Url } from "@conclave/client"
import { Base64Url, Errors, Limits, Names } from "@conclave/protocol"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Os from "node:os"
import { CliError } from "../CliError.js"
import * as Ctx from "../Context.js"
import * as Flags from "../Flags.js"
import * as Output from "../Output.js"
import * as Remote from "../Remote.js"

const checkName = (what: string, value: string): Effect.Effect<string, CliError> => {
  const problem = Names.nameProblem(value)
  return problem === undefined
    ? Effect.succeed(value)
    : Effect.fail(new CliError({ message: `invalid ${what}: \`${value}\` (${problem})` }))
}

/** `conclave key`. @since 0.1.0 @category commands */
export const key = Command.make("key", { json: Flags.json }, ({ json }) =>
  Effect.gen(function*() {
    const dir = yield* Ctx.configDir
    const { created, identity } = yield* Identity.loadOrCreate(dir).pipe(
      Effect.mapError((e) => new CliError({ message: e.message, cause: e }))
    )
    if (created) yield* Output.note(`created a new machine key at ${Identity.keyPath(dir)}`)
    yield* json
      ? Output.json({ public_key: identity.publicKeyText, created, path: Identity.keyPath(dir) })
      : Output.line(identity.publicKeyText)
  })).pipe(
    Command.withDescription(
      "Print this machine's public key (base64url), creating the key on first use. Idempotent."
    )
  )

const defaultMachine = (): string => {
  const host = Os.hostname().trim()
  return host === "" ? "machine" : host
}

/** The path this key authenticates as on `url`, or none when the server does not know the key. */
const enrolledPath = (url: string, identity: Identity.Identity) =>
  Effect.scoped(
    Connection.connect({ url, handle: Ctx.cliHandle(), client: "cli", identity }).pipe(
      Effect.map((conn) => Option.some(conn.path)),
      Effect.catchIf(
        (e) =>
          e._tag === "AuthRejected" && e.error.kind === "unauthorized" &&
          // an offered key (`machine add`, issue 22) is not enrolled yet: registering accepts the offer
          e.error.message.startsWith(Errors.Messages.unknownKey),
        () => Effect.succeed(Option.none<Names.SessionPath>())
      ),
      Effect.mapError((e) => new CliError({ message: e.message, cause: e }))
    )
  )

/** `conclave register`. @since 0.1.0 @category commands */
export const register = Command.make(
  "register",
  {
    server: Flags.server,
    username: Options.text("username").pipe(
      Options.withPseudoName("NAME"),
      Options.withDescription("Username to claim.")
    ),
    machine: Options.text("machine").pipe(
      Options.withPseudoName("NAME"),
      Options.optional,
      Options.withDescription("Name of this machine (default: the host name).")
    ),
    json: Flags.json
  },
  (args) =>
    Effect.gen(function*() {
      const url = yield* Ctx.parseUrl(args.server)
      const username = yield* checkName("username", args.username)
      const machine = yield* checkName("machine name", Option.getOrElse(args.machine, defaultMachine)).pipe(
        Effect.mapError((e) =>
          Option.isNone(args.machine) ? new CliError({ message: `${e.message}; pass --machine NAME` }) : e
        )
      )
      const dir = yield* Ctx.configDir
      const { created, identity } = yield* Identity.loadOrCreate(dir).pipe(
        Effect.mapError((e) => new CliError({ message: e.message, cause: e }))
      )
      if (created) yield* Output.note(`created a new machine key at ${Identity.keyPath(dir)}`)
      // An existing key may already be enrolled there: under this name it is an idempotent success,
      // under another name the error says which (issue 23, item 5).
      const enrolled = created ? Option.none() : yield* enrolledPath(url, identity)
      if (Option.isSome(enrolled)) {
        const known = enrolled.value
        if (known.user !== username) {
          return yield* new CliError({
            message:
              `this key is registered as \`${known.user}\` on ${url}, not \`${username}\` (a key already enrolled holds one username per server): use --username ${known.user}, or a separate --config-dir for a second identity`
          })
        }
        yield* Ctx.updateConfig((c) =>
          LocalConfig.upsertRegistration(c, { url, username: known.user, machine: known.machine })
        )
        return yield* args.json
          ? Output.json({
            url,
            username: known.user,
            machine: known.machine,
            path: known,
            public_key: identity.publicKeyText,
            already: true
          })
          : Output.success(`already registered as ${known.user}/${known.machine} on ${url}`)
      }
      const path = yield* Remote.withSession(url, (conn) => Effect.succeed(conn.path), {
        identity,
        register: { username, machine }
      }).pipe(Effect.mapError((e) => {
        const other = /this key is registered as `([^`]+)`/.exec(e.message)
        return other === null ? e : new CliError({
          message: `this key is registered as \`${
            other[1]
          }\` on ${url}, not \`${username}\` (a key already enrolled holds one username per server): use --username ${
            other[1]
          }, or a separate --config-dir for a second identity`,
          cause: e
        })
      }))
      yield* Ctx.updateConfig((c) =>
        LocalConfig.upsertRegistration(c, { url, username: path.user, machine: path.machine })
      )
      yield* args.json
        ? Output.json({ url, username: path.user, machine: path.machine, path, public_key: identity.publicKeyText })
        : Output.success(`registered ${Names.renderPath(path)}`)
    })
).pipe(
  Command.withDescription(
    "Claim a username on a server and enroll this machine's key as its first machine (creates the key if needed), then record the registration in config.toml."
  )
)

const parsePubkey = (text: string) => {
  const trimmed = text.trim()
  const bytes = Base64Url.decode(trimmed)
  if (bytes === undefined) {
    return Effect.fail(new CliError({ message: `invalid public key: \`${text}\` is not base64url without padding` }))
  }
  if (bytes.length !== Limits.PUBLIC_KEY_BYTES) {
    return Effect.fail(
      new CliError({ message: `invalid public key: expected ${Limits.PUBLIC_KEY_BYTES} bytes, got ${bytes.length}` })
    )
  }
  return Effect.succeed(trimmed)
}

const machineAdd = Command.make(
  "add",
  {
    server: Flags.server,
    name: Options.text("name").pipe(
      Options.withPseudoName("NAME"),
      Options.withDescription("Name of the new machine.")
    ),
    pubkey: Options.text("pubkey").pipe(
      Options.withPseudoName("KEY"),
      Options.withDescription("The new machine's public key (`conclave key` prints it there).")
    ),
    json: Flags.json
  },
  (args) =>
    Effect.gen(function*() {
      const pubkey = yield* parsePubkey(args.pubkey)
      const name = yield* checkName("machine name", args.name)
      const url = yield* Ctx.parseUrl(args.server)
      const { ack, user } = yield* Remote.withSession(url, (conn) =>
        Effect.map(Remote.admin(conn, { kind: "machine_add", name, pubkey }, "ack"), (ack) => ({
          ack,
          user: conn.path.user
        })))
      yield* ackOut(args.json, ack.detail ?? name)
      // The key is offered: its holder accepts by signing the server's challenge (issue 22).
      if (!args.json) {
        yield* Output.note(
          `on the new machine, accept with: conclave server add ${url} --username ${user} --machine ${name}`
        )
      }
    })
).pipe(Command.withDescription(
  "Offer another machine's key a place under your account (run from an enrolled machine); the new machine accepts with `server add` (or `register`) under the same names, proving it holds the key."
))

const machineList = Command.make("list", { server: Flags.server, json: Flags.json }, (args) =>
  Effect.gen(function*() {
    const url = yield* Ctx.parseUrl(args.server)
    const reply = yield* Remote.withSession(url, (conn) => Remote.call(conn, { type: "list_machines" }, "machine_list"))
    if (args.json) return yield* Output.json({ machines: reply.machines })
    for (const m of reply.machines) yield* Output.line(`${m.name}\t${m.pubkey}\t${m.added_at}`)
  })).pipe(Command.withDescription("List the machines enrolled under your account."))

const machineRemove = Command.make(
  "remove",
  {
    server: Flags.server,
    name: Args.text({ name: "NAME" }).pipe(Args.withDescription("Machine to remove.")),
    json: Flags.json
  },
  (args) =>
    Effect.gen(function*() {
      const url = yield* Ctx.parseUrl(args.server)
      const ack = yield* Remote.withSession(url, (conn) =>
        Remote.admin(conn, { kind: "machine_remove", name: args.name }, "ack"))
      yield* ackOut(args.json, ack.detail ?? args.name)
    })
).pipe(
  Command.withDescription(
    "Remove one of your machines: its key can no longer authenticate and its live sessions are dropped."
  )
)

/** Print an `ack` (SPEC §6.1). @since 0.1.0 @category printing */
export const ackOut = (json: boolean, detail: string | null) =>
  json ? Output.json({ ok: true, detail }) : Output.success(detail ?? "ok")

/** @since 0.1.0 @category commands */
export const machineCommands = [machineAdd, machineList, machineRemove] as const

/** `conclave machine`. @since 0.1.0 @category commands */
export const machine = Command.make("machine").pipe(
  Command.withDescription("Manage the machines (keys) enrolled under your account."),
  Command.withSubcommands(machineCommands)
)

const serverAdd = Command.make(
  "add",
  {
    url: Args.text({ name: "URL" }).pipe(Args.withDescription("Server URL.")),
    username: Options.text("username").pipe(
      Options.withPseudoName("NAME"),
      Options.withDescription("Your existing username there.")
    ),
    machine: Options.text("machine").pipe(
      Options.withPseudoName("NAME"),
      Options.withDescription("The name this machine was enrolled under (`machine add --name`).")
    ),
    json: Flags.json
  },
  (args) =>
    Effect.gen(function*() {
      const url = yield* Ctx.parseUrl(args.url)
      const username = yield* checkName("username", args.username)
      const machineName = yield* checkName("machine name", args.machine)
      const identity = yield* Ctx.loadIdentity
      yield* Ctx.updateConfig((c) => LocalConfig.upsertRegistration(c, { url, username, machine: machineName }))
      if (!args.json) yield* Output.success(`recorded ${url} as ${username}/${machineName}`)
      // Registering as username/machine accepts the `machine add` offer of this key (its signature over
      // the server's challenge proves possession, issue 22); a key enrolled already just authenticates.
      const path = yield* Remote.withSession(url, (conn) => Effect.succeed(conn.path), {
        identity,
        register: { username, machine: machineName }
      }).pipe(
        Effect.mapError((e) =>
          new CliError({ message: `recorded \`${url}\` locally, but verification failed: ${e.message}`, cause: e })
        )
      )
      if (path.user !== username || path.machine !== machineName) {
        return yield* new CliError({
          message:
            `recorded \`${url}\` as ${username}/${machineName}, but this key authenticates as ${path.user}/${path.machine}; ` +
            `run \`conclave server add ${url} --username ${path.user} --machine ${path.machine}\``
        })
      }
      yield* args.json
        ? Output.json({ url, username, machine: machineName, verified: true, path })
        : Output.success(`verified: authenticated as ${Names.renderPath(path)}`)
    })
).pipe(
  Command.withDescription(
    "Record a registration for a machine added with `machine add`, accepting that offer with this machine's key (it signs the server's challenge)."
  )
)

const serverList = Command.make("list", { json: Flags.json }, (args) =>
  Effect.gen(function*() {
    const config = yield* Ctx.loadConfig
    if (args.json) return yield* Output.json({ servers: config.servers })
    if (config.servers.length === 0) {
      return yield* Output.line(
        "no servers registered; run `conclave register --server <url> --username <you>` first"
      )
    }
    for (const s of config.servers) yield* Output.line(`${s.url}\t${s.username}/${s.machine}`)
  })).pipe(Command.withDescription("List this machine's registrations (local)."))

const serverRemove = Command.make(
  "remove",
  { url: Args.text({ name: "URL" }).pipe(Args.withDescription("Server URL to forget.")), json: Flags.json },
  (args) =>
    Effect.gen(function*() {
      const url = Url.normalizeOrSelf(args.url)
      const config = yield* Ctx.loadConfig
      const removed = LocalConfig.removeServer(config, url)
      if (Option.isNone(removed)) {
        return yield* new CliError({
          message: `no registration for \`${url}\` (see \`conclave server list\`)`
        })
      }
      const dir = yield* Ctx.configDir
      yield* LocalConfig.save(dir, removed.value.config).pipe(
        Effect.mapError((e) => new CliError({ message: e.message, cause: e }))
      )
      const n = removed.value.removedOverrides
      yield* args.json
        ? Output.json({ url, removed_overrides: n })
        : Output.success(`forgot \`${url}\` (${n} permission override(s) removed)`)
    })
).pipe(
  Command.withDescription(
    "Forget a registration and all of its permission overrides (local; the account on the server is untouched)."
  )
)

/** @since 0.1.0 @category commands */
export const serverCommands = [serverAdd, serverList, serverRemove] as const

/** `conclave server`. @since 0.1.0 @category commands */
export const server = Command.make("server").pipe(
  Command.withDescription("Manage this machine's server registrations (local config.toml)."),
  Command.withSubcommands(serverCommands)
)
