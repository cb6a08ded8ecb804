/**
 * The `conclave` command tree (SPEC §6.1 order) and the command reference the skill embeds.
 *
 * @since 0.1.0
 */
import * as Args from "@effect/cli/Args"
import type * as CliApp from "@effect/cli/CliApp"
import * as CliConfig from "@effect/cli/CliConfig"
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import * as Usage from "@effect/cli/Usage"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { CliError } from "./CliError.js"
import * as Admin from "./commands/Admin.js"
import { bridge } from "./commands/Bridge.js"
import { makeCompletions } from "./commands/Completions.js"
import { consoleCommand } from "./commands/Console.js"
import { demo } from "./commands/Demo.js"
import { doctor } from "./commands/Doctor.js"
import * as HookCmd from "./commands/Hook.js"
import * as IdentityCmd from "./commands/Identity.js"
import * as Perm from "./commands/Perm.js"
import { send } from "./commands/Send.js"
import { serve } from "./commands/Serve.js"
import { setup } from "./commands/Setup.js"
import { makeSkill } from "./commands/Skill.js"
import { status } from "./commands/Status.js"
import { tail } from "./commands/Tail.js"
import type { CommandNode } from "./CommandTree.js"
import type { GlobalOptions } from "./GlobalOptions.js"
import { type Output, stripAnsi } from "./Output.js"
import { VERSION } from "./Version.js"

/** @since 0.1.0 @category constants */
export { VERSION } from "./Version.js"

const globalOptionsHelp = HelpDoc.blocks([
  HelpDoc.h1("GLOBAL OPTIONS (before or after the subcommand)"),
  HelpDoc.descriptionList([
    [
      HelpDoc.getSpan(HelpDoc.p("--config-dir DIR")),
      HelpDoc.p("Use DIR instead of the per-user config directory (~/.config/conclave on Linux).")
    ],
    [
      HelpDoc.getSpan(HelpDoc.p("-v, --verbose")),
      HelpDoc.p("Debug logging on stderr (CONCLAVE_LOG_LEVEL overrides; CONCLAVE_LOG_FORMAT=json for JSON lines).")
    ],
    [HelpDoc.getSpan(HelpDoc.p("-V, --version")), HelpDoc.p("Print the version.")]
  ])
])

const helpText = <Name extends string, R, E, A>(
  command: Command.Command<Name, R, E, A>,
  path: ReadonlyArray<string>
): string => {
  const usage = HelpDoc.toAnsiText(Usage.getHelp(Command.getUsage(command))).trim()
  const prefix = ["conclave", ...path.slice(0, -1)].join(" ")
  const shownUsage = path.length === 0 ? usage : `${prefix} ${usage}`
  const body = HelpDoc.toAnsiText(Command.getHelp(command, CliConfig.make({ showBuiltIns: false })))
  return stripAnsi(`USAGE\n\n$ ${shownUsage}\n\n${body}`)
    .replace(/[ \t]+$/gm, "")
    .replace(
      /^ *(A user-defined piece of text\.|A true or false value\.|This setting is optional\.|An integer\.)\n\n?/gm,
      ""
    )
    .replace(/\n{3,}/g, "\n\n")
    .trim()
}

const node = <Name extends string, R, E, A>(
  command: Command.Command<Name, R, E, A>,
  path: ReadonlyArray<string>,
  children: ReadonlyArray<CommandNode> = []
): CommandNode => ({ path, help: () => helpText(command, path), children })

const skill = makeSkill(() => tree)

const completions = makeCompletions((shell) =>
  shell === "bash"
    ? Command.getBashCompletions(root, "conclave")
    : shell === "zsh"
    ? Command.getZshCompletions(root, "conclave")
    : Command.getFishCompletions(root, "conclave")
)

let runHelp: (
  words: ReadonlyArray<string>
) => Effect.Effect<void, CliError, GlobalOptions | Output | CliApp.CliApp.Environment> = () => Effect.void

const help = Command.make(
  "help",
  { words: Args.text({ name: "COMMAND" }).pipe(Args.repeated, Args.withDescription("The command to explain.")) },
  ({ words }) => Effect.suspend(() => runHelp(words))
).pipe(Command.withDescription("Show the help of conclave or of one of its commands (`conclave help tail`)."))

const rootOptions = {
  configDir: Options.text("config-dir").pipe(
    Options.withPseudoName("DIR"),
    Options.optional,
    Options.withDescription("Config directory (default: the per-user config dir, e.g. ~/.config/conclave).")
  ),
  verbose: Options.boolean("verbose").pipe(Options.withAlias("v"), Options.withDescription("Debug logging on stderr."))
}

let rootHelp: () => HelpDoc.HelpDoc = () => HelpDoc.empty

const rootBase = Command.make(
  "conclave",
  rootOptions,
  () => Console.log(HelpDoc.toAnsiText(HelpDoc.blocks([rootHelp(), globalOptionsHelp])))
).pipe(
  Command.withDescription(
    "Discord for AI agents: channels, whispers and presence for Claude Code sessions. Run `conclave <command> --help` for details."
  )
)

/**
 * The root command with every verb, in the order of SPEC §6.1 (+ `demo`).
 *
 * @since 0.1.0
 * @category commands
 */
export const root = rootBase.pipe(
  Command.withSubcommands([
    serve,
    bridge,
    IdentityCmd.key,
    IdentityCmd.register,
    IdentityCmd.machine,
    IdentityCmd.server,
    Perm.join,
    Perm.perm,
    Admin.channel,
    Admin.acl,
    Admin.invite,
    status,
    doctor,
    send,
    tail,
    consoleCommand,
    Admin.who,
    Admin.kick,
    Admin.ban,
    Admin.unban,
    Admin.bans,
    Admin.user,
    skill.command,
    completions,
    demo,
    HookCmd.hook,
    setup,
    help
  ])
)

rootHelp = () => Command.getHelp(root, CliConfig.defaultConfig)

/**
 * The command tree, depth-first in definition order (the skill's command reference).
 *
 * @since 0.1.0
 * @category commands
 */
export const tree: CommandNode = node(root, [], [
  node(serve, ["serve"]),
  node(bridge, ["bridge"]),
  node(IdentityCmd.key, ["key"]),
  node(IdentityCmd.register, ["register"]),
  node(IdentityCmd.machine, ["machine"], [
    node(IdentityCmd.machineCommands[0], ["machine", "add"]),
    node(IdentityCmd.machineCommands[1], ["machine", "list"]),
    node(IdentityCmd.machineCommands[2], ["machine", "remove"])
  ]),
  node(IdentityCmd.server, ["server"], [
    node(IdentityCmd.serverCommands[0], ["server", "add"]),
    node(IdentityCmd.serverCommands[1], ["server", "list"]),
    node(IdentityCmd.serverCommands[2], ["server", "remove"])
  ]),
  node(Perm.join, ["join"]),
  node(Perm.perm, ["perm"], [
    node(Perm.permCommands[0], ["perm", "set"]),
    node(Perm.permCommands[1], ["perm", "show"])
  ]),
  node(
    Admin.channel,
    ["channel"],
    [
      node(Admin.channelCommands[0], ["channel", "create"]),
      node(Admin.channelCommands[1], ["channel", "delete"]),
      node(Admin.channelCommands[2], ["channel", "rename"]),
      node(Admin.channelCommands[3], ["channel", "set-visibility"]),
      node(Admin.channelCommands[4], ["channel", "list"])
    ]
  ),
  node(Admin.acl, ["acl"], [
    node(Admin.aclCommands[0], ["acl", "add"]),
    node(Admin.aclCommands[1], ["acl", "remove"]),
    node(Admin.aclCommands[2], ["acl", "list"])
  ]),
  node(Admin.invite, ["invite"], [
    node(Admin.inviteCommands[0], ["invite", "create"]),
    node(Admin.inviteCommands[1], ["invite", "revoke"]),
    node(Admin.inviteCommands[2], ["invite", "list"])
  ]),
  node(status, ["status"]),
  node(doctor, ["doctor"]),
  node(send, ["send"]),
  node(tail, ["tail"]),
  node(consoleCommand, ["console"]),
  node(Admin.who, ["who"]),
  node(Admin.kick, ["kick"]),
  node(Admin.ban, ["ban"]),
  node(Admin.unban, ["unban"]),
  node(Admin.bans, ["bans"]),
  node(Admin.user, ["user"], [
    node(Admin.userCommands[0], ["user", "list"]),
    node(Admin.userCommands[1], ["user", "remove"])
  ]),
  node(skill.command, ["skill"], [
    node(skill.children[0], ["skill", "show"]),
    node(skill.children[1], ["skill", "install"])
  ]),
  node(completions, ["completions"]),
  node(demo, ["demo"]),
  node(HookCmd.hook, ["hook"], [node(HookCmd.hookCommands[0], ["hook", "claude"])]),
  node(setup, ["setup"])
])

/**
 * Parse and run `argv` (`[node, script, ...args]`, global options already removed).
 *
 * @since 0.1.0
 * @category running
 */
export const run = Command.run(root, { name: "conclave", version: VERSION, footer: globalOptionsHelp })

/** The tree node at `words` (a command path), if there is one. */
const find = (words: ReadonlyArray<string>): CommandNode | undefined => {
  let current: CommandNode | undefined = tree
  for (const word of words) current = current?.children.find((c) => c.path[c.path.length - 1] === word)
  return current
}

runHelp = (words) =>
  find(words) === undefined
    ? Effect.fail(
      new CliError({ message: `unknown command \`${words.join(" ")}\` (see \`conclave --help\`)` })
    )
    : run(["node", "conclave", ...words, "--help"]).pipe(Effect.ignore)

const distance = (a: string, b: string): number => {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1))
      previous = current
    }
  }
  return row[b.length]!
}

/** The closest candidate within two edits (or one that starts with `word`), if any. */
const closest = (word: string, candidates: ReadonlyArray<string>): string | undefined => {
  let best: string | undefined
  let bestDistance = Infinity
  for (const c of candidates) {
    const d = c.startsWith(word) && word.length >= 2 ? 0.5 : distance(word, c)
    if (d < bestDistance) {
      best = c
      bestDistance = d
    }
  }
  return bestDistance <= Math.max(1, Math.min(2, Math.floor(word.length / 3))) ? best : undefined
}

/** Options every command accepts (@effect/cli built-ins and the global options). */
const BUILT_IN_FLAGS = ["--help", "--wizard", "--completions", "--log-level", "--version", "--config-dir", "--verbose"]

/**
 * A did-you-mean for an unknown verb (at any depth) or an unknown flag of the verb, scoped to the
 * sub-verb (issue 23, item 6); `undefined` when the words look right and parsing should go on.
 *
 * @since 0.1.0
 * @category parsing
 */
export const suggest = (words: ReadonlyArray<string>): string | undefined => {
  let current: CommandNode = tree
  let i = 0
  while (current.children.length > 0 && i < words.length) {
    const word = words[i]!
    if (word.startsWith("-")) break
    const names = current.children.map((c) => c.path[c.path.length - 1]!)
    const child = current.children.find((c) => c.path[c.path.length - 1] === word)
    if (child === undefined) {
      if (word === "help") return undefined
      const here = ["conclave", ...current.path].join(" ")
      const best = closest(word, names)
      return `unknown command \`${[...current.path, word].join(" ")}\`` +
        (best === undefined ? "" : `: did you mean \`${here} ${best}\`?`) +
        ` (${current.path.length === 0 ? "commands" : `subcommands of \`${here}\``}: ${names.join(", ")})`
    }
    current = child
    i += 1
  }
  if (current.children.length > 0) return undefined
  const flags = [...new Set([...current.help().matchAll(/--[a-z][a-z0-9-]*/g)].map((m) => m[0]))]
  for (const word of words.slice(i)) {
    if (word === "--") break
    if (!word.startsWith("--")) continue
    const name = word.split("=")[0]!
    if (flags.includes(name) || BUILT_IN_FLAGS.includes(name)) continue
    const verb = ["conclave", ...current.path].join(" ")
    const best = closest(name, flags)
    return `unknown flag \`${name}\` for \`${verb}\`` + (best === undefined ? "" : `: did you mean \`${best}\`?`) +
      ` (see \`${verb} --help\`)`
  }
  return undefined
}
