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
import { makeCompletions, withValues } from "./commands/Completions.js"
import { consoleCommand } from "./commands/Console.js"
import { demo } from "./commands/Demo.js"
import { doctor } from "./commands/Doctor.js"
import * as HookCmd from "./commands/Hook.js"
import * as IdentityCmd from "./commands/Identity.js"
import * as Perm from "./commands/Perm.js"
import { permit } from "./commands/Permit.js"
import { send } from "./commands/Send.js"
import { serve } from "./commands/Serve.js"
import { setup } from "./commands/Setup.js"
import { makeSkill } from "./commands/Skill.js"
import { status } from "./commands/Status.js"
import { tail } from "./commands/Tail.js"
import type { CommandNode } from "./CommandTree.js"
import type { GlobalOptions } from "./GlobalOptions.js"
import { type Output, stripAnsi } from "./Output.js"
import * as Parsing from "./Parsing.js"
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

/** A repeatable flag (`--admin USER[=PUBKEY]...`): zero or more, so shown as optional. */
const REPEATED_OPTION = /(?<!\[)(--[a-z][a-z0-9-]* [A-Z][A-Z0-9_]*(?:\[[^\]\s]*\])?)\.\.\./g

/** The usage line of a command, as the full command (`conclave perm set …`). */
const usageText = <Name extends string, R, E, A>(
  command: Command.Command<Name, R, E, A>,
  path: ReadonlyArray<string>
): string => {
  const usage = stripAnsi(HelpDoc.toAnsiText(Usage.getHelp(Command.getUsage(command))).trim())
  const prefix = ["conclave", ...path.slice(0, -1)].join(" ")
  return (path.length === 0 ? usage : `${prefix} ${usage}`).replace(REPEATED_OPTION, "[$1]...")
}

const helpText = <Name extends string, R, E, A>(
  command: Command.Command<Name, R, E, A>,
  path: ReadonlyArray<string>
): string => {
  const shownUsage = usageText(command, path)
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
): CommandNode => {
  const made: CommandNode = { path, help: () => helpText(command, path), children }
  usages.set(made, () => usageText(command, path))
  return made
}

/** Each node's usage line alone (cheaper than its help: parse checks and completions need only it). */
const usages = new WeakMap<CommandNode, () => string>()
const usageOf = (node: CommandNode): string => usages.get(node)?.() ?? /^\$ (.*)$/m.exec(node.help())?.[1] ?? ""

const skill = makeSkill(() => tree)

const completions = makeCompletions((shell) =>
  (shell === "bash"
    ? Command.getBashCompletions(root, "conclave")
    : shell === "zsh"
    ? Command.getZshCompletions(root, "conclave")
    : Command.getFishCompletions(root, "conclave")).pipe(
      Effect.map((lines) => withValues(shell, lines.join("\n"), Parsing.valueFlags(spec())).split("\n"))
    )
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

const rootBase = Command.make(
  "conclave",
  rootOptions,
  () => Console.log(helpOf(tree))
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
    permit,
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
  node(permit, ["permit"]),
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

const runParsed = Command.run(root, { name: "conclave", version: VERSION, footer: globalOptionsHelp })

/** The text of the global options, shown under every help. */
const globalOptionsText = () => stripAnsi(HelpDoc.toAnsiText(globalOptionsHelp)).replace(/[ \t]+$/gm, "").trim()

const spec = (): Parsing.Spec => ({ tree, usageOf, globalOptions: globalOptionsText(), version: VERSION })

/**
 * The help of one node, trimmed to what matters (see `Parsing.helpOf`).
 *
 * @since 0.1.0
 * @category help
 */
export const helpOf = (node: CommandNode): string => Parsing.helpOf(spec(), node)

/**
 * The help to print for these words (`-h`/`--help` anywhere before `--`), if any.
 *
 * @since 0.1.0
 * @category help
 */
export const helpRequested = (words: ReadonlyArray<string>): string | undefined => Parsing.helpRequested(spec(), words)

/**
 * A did-you-mean for an unknown verb or flag, or what a missing argument or flag value takes;
 * `undefined` when the words look right and parsing should go on (issue 23, item 6).
 *
 * @since 0.1.0
 * @category parsing
 */
export const suggest = (words: ReadonlyArray<string>): string | undefined => Parsing.suggest(spec(), words)

/**
 * Parse and run `argv` (`[node, script, ...args]`, global options already removed). `--help`
 * prints this CLI's trimmed help instead of the library's.
 *
 * @since 0.1.0
 * @category running
 */
export const run = (argv: ReadonlyArray<string>) => {
  const words = argv.slice(2)
  const help = helpRequested(words)
  if (help !== undefined) return Console.log(help)
  // The library's `--completions SHELL` on any verb: the same script as `conclave completions SHELL`.
  const at = Parsing.beforeDashes(words).indexOf("--completions")
  const shell = at < 0 ? undefined : words[at + 1]
  return runParsed(shell === undefined ? argv : [...argv.slice(0, 2), "completions", shell])
}

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
    : Console.log(helpOf(find(words)!))
