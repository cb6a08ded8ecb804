/**
 * `conclave setup claude|codex|gemini [--scope local|user] [--dry-run]` (D-52): write the harness's
 * MCP server entry for `conclave bridge` (and, for Claude Code, the `conclave hook claude` hooks),
 * idempotently, printing what changed. Every edit is computed before anything is written, so a file
 * that cannot be read or edited leaves every file as it was.
 *
 * @since 0.1.0
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { CliError } from "../CliError.js"
import { GlobalOptions } from "../GlobalOptions.js"
import * as Output from "../Output.js"
import * as Setup from "../Setup.js"

const errorText = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

const read = (path: string): Effect.Effect<string | undefined, CliError> =>
  Effect.tryPromise({
    try: () => Fs.readFile(path, "utf8"),
    catch: (cause) => cause
  }).pipe(
    Effect.catchAll((cause) =>
      (cause as NodeJS.ErrnoException).code === "ENOENT"
        ? Effect.succeed(undefined)
        : Effect.fail(new CliError({ message: `cannot read \`${path}\`: ${errorText(cause)}` }))
    )
  )

/** Write through a temp file and a rename, keeping an existing file's permissions. */
const write = (path: string, text: string, mode: number): Effect.Effect<void, CliError> =>
  Effect.tryPromise({
    try: async () => {
      await Fs.mkdir(Path.dirname(path), { recursive: true })
      const existing = await Fs.stat(path).then((s) => s.mode & 0o777, () => mode)
      const temp = `${path}.conclave-${process.pid}.tmp`
      await Fs.writeFile(temp, text, { mode: existing })
      await Fs.chmod(temp, existing)
      await Fs.rename(temp, path)
    },
    catch: (cause) => new CliError({ message: `cannot write \`${path}\`: ${errorText(cause)}` })
  })

const tilde = (path: string, home: string) =>
  home !== "" && (path === home || path.startsWith(home + Path.sep)) ? `~${path.slice(home.length)}` : path

const harness = Args.choice(Setup.HARNESSES.map((h) => [h, h] as const), { name: "HARNESS" }).pipe(
  Args.withDescription("claude | codex | gemini")
)

const scope = Options.choice("scope", ["local", "user"] as const).pipe(
  Options.optional,
  Options.withDescription(
    "local: this project (Claude Code's default: ~/.claude.json for this directory and .claude/settings.local.json; " +
      "Codex: .codex/config.toml; Gemini CLI: .gemini/settings.json). user: every project (the default for Codex and Gemini CLI)."
  )
)

const dryRun = Options.boolean("dry-run").pipe(Options.withDescription("Print the changes without writing anything."))

/** @since 0.1.0 @category commands */
export const setup = Command.make("setup", { harness, scope, dryRun }, (args) =>
  Effect.gen(function*() {
    const global = yield* GlobalOptions
    const env = yield* Effect.sync(() => ({ home: Os.homedir(), cwd: process.cwd(), env: process.env }))
    const chosen = Option.getOrElse(args.scope, () => Setup.DEFAULT_SCOPE[args.harness])
    const how = Setup.launch(Option.getOrUndefined(global.configDir), env.cwd)
    const targets = Setup.targets(args.harness, chosen, env, how)

    const planned: Array<{ readonly target: Setup.Target; readonly edit: Setup.Edit }> = []
    for (const target of targets) {
      const current = yield* read(target.path)
      const edit = target.edit(current)
      if (Either.isLeft(edit)) return yield* new CliError({ message: edit.left })
      planned.push({ target, edit: edit.right })
    }

    const label = `${Setup.LABEL[args.harness]} (${chosen} scope)`
    const changed = planned.filter((p) => p.edit.changes.length > 0)
    for (const { edit, target } of planned) {
      const shown = tilde(target.path, env.home)
      if (edit.changes.length === 0) {
        yield* Output.line(`unchanged ${shown}`)
        continue
      }
      yield* Output.line(`${args.dryRun ? "would update" : "updated"} ${shown}`)
      for (const change of edit.changes) yield* Output.line(`  ${change}`)
      if (target.note !== undefined) yield* Output.line(`  note: ${target.note}`)
    }
    if (changed.length === 0) {
      return yield* Output.success(`conclave is already set up for ${label}; nothing changed`)
    }
    if (args.dryRun) return yield* Output.line(`dry run: nothing was written (${changed.length} file(s) would change)`)
    for (const { edit, target } of changed) yield* write(target.path, edit.after, target.mode)
    yield* Output.success(`set up conclave for ${label}: ${changed.length} file(s) updated`)
  })).pipe(
    Command.withDescription(
      "Register `conclave bridge` as an MCP server of Claude Code, Codex or Gemini CLI (for Claude Code also the " +
        "`conclave hook claude` hooks), keeping every other entry. Running it again changes nothing."
    )
  )
