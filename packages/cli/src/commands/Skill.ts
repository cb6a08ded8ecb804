/**
 * `conclave skill [show]` / `skill install [--dir DIR]` (SPEC §6.2, §7): the curated body plus a
 * command reference generated from the command tree.
 *
 * @since 0.1.0
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { CliError } from "../CliError.js"
import { type CommandNode, renderReference } from "../CommandTree.js"
import * as Output from "../Output.js"
import { SKILL_BODY } from "../SkillBody.js"

/**
 * The complete SKILL.md: front matter and curated body, then `## Command reference`.
 *
 * @since 0.1.0
 * @category rendering
 */
export const render = (reference: string): string =>
  `${SKILL_BODY.trimEnd()}\n\n## Command reference\n\nGenerated from the CLI's own help (\`conclave <command> --help\`).\n\n${reference.trimEnd()}\n`

/** Where `skill install` writes: `<dir>/conclave/SKILL.md`. @since 0.1.0 @category paths */
export const installPath = (dir: string): string => Path.join(dir, "conclave", "SKILL.md")

/** Write the skill file, creating directories and overwriting. @since 0.1.0 @category install */
export const install = (dir: string, text: string): Effect.Effect<string, CliError> => {
  const file = installPath(dir)
  return Effect.tryPromise({
    try: async () => {
      await Fs.mkdir(Path.dirname(file), { recursive: true })
      await Fs.writeFile(file, text)
      return file
    },
    catch: (cause) =>
      new CliError({ message: `cannot write \`${file}\`: ${cause instanceof Error ? cause.message : String(cause)}` })
  })
}

/** The `skill` command group; `tree` is read lazily (the tree contains this command). @since 0.1.0 @category commands */
export const makeSkill = (tree: () => CommandNode) => {
  const text = () => render(renderReference(tree()))
  const print = Effect.suspend(() => Output.line(text().trimEnd()))
  const show = Command.make("show", {}, () => print).pipe(
    Command.withDescription("Print the rendered SKILL.md to stdout.")
  )
  const installCommand = Command.make(
    "install",
    {
      dir: Options.text("dir").pipe(
        Options.withPseudoName("DIR"),
        Options.optional,
        Options.withDescription("Skills directory (default: ~/.claude/skills).")
      )
    },
    (args) =>
      Effect.gen(function*() {
        const dir = Option.getOrElse(args.dir, () => Path.join(Os.homedir(), ".claude", "skills"))
        const file = yield* install(dir, text())
        yield* Output.success(`installed the conclave skill to ${file}`)
      })
  ).pipe(Command.withDescription("Write SKILL.md to <DIR>/conclave/SKILL.md (creates directories, overwrites)."))
  const children = [show, installCommand] as const
  const command = Command.make("skill", {}, () => print).pipe(
    Command.withDescription("Print (or install) the Claude Code skill that teaches an agent to use conclave."),
    Command.withSubcommands(children)
  )
  return { command, children } as const
}
