/**
 * The `conclave` executable (`bin/conclave.js` imports this file). It answers the two verbs that run
 * often and must start fast without loading the program (issue 21: `--version`, and `hook claude`
 * on every prompt of a Claude Code session); everything else, including their `--help` and every
 * malformed form, goes to the @effect/cli command tree in `Main.ts`, loaded on demand.
 *
 * @since 0.1.0
 */

/** What the fast path decided. */
type Fast =
  | { readonly _tag: "Version" }
  | { readonly _tag: "Hook"; readonly harness: "claude"; readonly configDir: string | undefined }
  | { readonly _tag: "Full" }

/**
 * The same reading of the global options as `GlobalOptions.extract` (before any `--`), without its
 * imports; anything it does not recognise exactly is left to the full program.
 */
const classify = (args: ReadonlyArray<string>): Fast => {
  const rest: Array<string> = []
  let configDir: string | undefined
  let version = false
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    if (arg === "--") return { _tag: "Full" }
    if (arg === "-v" || arg === "--verbose") continue
    if (arg === "--config-dir") {
      const value = args[i + 1]
      if (value === undefined || value === "") return { _tag: "Full" }
      configDir = value
      i++
    } else if (arg.startsWith("--config-dir=")) {
      const value = arg.slice("--config-dir=".length)
      if (value === "") return { _tag: "Full" }
      configDir = value
    } else if (arg === "-V" || arg === "--version") {
      version = true
    } else {
      rest.push(arg)
    }
  }
  if (version) return { _tag: "Version" }
  if (rest.length === 2 && rest[0] === "hook" && rest[1] === "claude") {
    return { _tag: "Hook", harness: "claude", configDir }
  }
  return { _tag: "Full" }
}

const fast = classify(process.argv.slice(2))
if (fast._tag === "Version") {
  const { VERSION } = await import("./Version.js")
  // clap's shape (`conclave 0.1.0`), for the root and every subcommand (SPEC §6.1).
  process.stdout.write(`conclave ${VERSION}\n`)
} else if (fast._tag === "Hook") {
  const { runClaudeHook } = await import("./Hook.js")
  const problem = await runClaudeHook({ configDir: fast.configDir })
  if (problem !== undefined) {
    process.stderr.write(`error: ${problem}\n`)
    process.exitCode = 1
  }
} else {
  const { main } = await import("./Main.js")
  main()
}
