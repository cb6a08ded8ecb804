// Issue 23, item 6: the completion scripts of the real binary, loaded in the real shells. bash calls
// the function its `complete -F` registered with COMP_WORDS set; zsh runs its completion system
// (compinit) in a pseudo-terminal (zsh/zpty), presses Tab and records what `compadd` was given;
// fish answers `complete -C`. Each checks verbs, flags and values. A shell that is missing prints one
// `skipped: no zsh` line; under CI=true the test fails instead.
import { LocalConfig } from "@conclave/client"
import { fileTempDir } from "@conclave/testkit/TempDir"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { assertBuilt, BIN, ok } from "./support/Harness.js"

assertBuilt()

type Shell = "bash" | "zsh" | "fish"
const SHELLS: ReadonlyArray<Shell> = ["bash", "zsh", "fish"]
const ci = process.env["CI"] === "true"
const pathOf = (shell: Shell) => [`/usr/bin/${shell}`, `/bin/${shell}`].find((p) => Fs.existsSync(p))

/**
 * What a line (the cursor at its end) must complete to: `exactly` the candidates that do not start
 * with `-` (or, for a partial flag, every candidate), or `includes`/`excludes` some.
 */
interface Case {
  readonly line: string
  readonly exactly?: ReadonlyArray<string>
  readonly includes?: ReadonlyArray<string>
  readonly excludes?: ReadonlyArray<string>
}

const LEVELS = ["act", "converse", "mute", "notify"]
const CASES: ReadonlyArray<Case> = [
  // verbs, at every depth
  { line: "conclave se", exactly: ["send", "serve", "server", "setup"] },
  { line: "conclave perm ", exactly: ["set", "show"] },
  { line: "conclave channel set-v", exactly: ["set-visibility"] },
  { line: "conclave machine l", exactly: ["list"] },
  // flags, each verb its own
  { line: "conclave serve --b", exactly: ["--bind", "--broker", "--burst"] },
  { line: "conclave tail --s", exactly: ["--server", "--since"] },
  {
    line: "conclave serve --",
    includes: ["--data-dir", "--ephemeral", "--admin"],
    excludes: ["--channel", "--perm", "--visibility", "--server", "--wizard"]
  },
  { line: "conclave channel create --server ws://a.test x --vi", exactly: ["--visibility"] },
  { line: "conclave tail --as x --", includes: ["--channel", "--utc", "--details"], excludes: ["--wizard"] },
  // values: positional arguments and flags
  { line: "conclave perm set ", exactly: LEVELS },
  { line: "conclave perm set c", exactly: ["converse"] },
  { line: "conclave join --server ws://a.test x --perm ", exactly: LEVELS },
  { line: "conclave channel create --server ws://a.test x --visibility ", exactly: ["private", "public", "unlisted"] },
  { line: "conclave completions ", exactly: ["bash", "fish", "zsh"] },
  { line: "conclave tail --completions ", exactly: ["bash", "fish", "zsh"] },
  { line: "conclave setup ", exactly: ["claude", "codex", "gemini"] },
  { line: "conclave setup --scope ", exactly: ["local", "user"] },
  { line: "conclave perm set --log-level e", exactly: ["error"] },
  // registered servers and the channels with levels, from the config (through `conclave` on PATH)
  { line: "conclave who --server ", exactly: ["ws://a.test", "wss://b.test"] },
  { line: "conclave send --server ws://a.test --channel ", exactly: ["design", "ops"] },
  // a flag that takes a value is not followed by flags or levels
  { line: "conclave serve --node-id ", excludes: ["--bind", "--data-dir"] },
  { line: "conclave tail --as ", excludes: ["--channel", "--utc"] },
  { line: "conclave perm set --server ", excludes: LEVELS }
]

const run = (file: string, args: ReadonlyArray<string>, env: NodeJS.ProcessEnv) =>
  Effect.async<string>((resume) => {
    const child = execFile(
      file,
      args,
      { env, timeout: 90_000, maxBuffer: 8 * 1024 * 1024 },
      (error, stdout, stderr) => {
        resume(
          error === null
            ? Effect.succeed(stdout)
            : Effect.dieMessage(`${file} ${args.slice(0, 2).join(" ")} failed: ${error.message}\n${stderr}\n${stdout}`)
        )
      }
    )
    return Effect.sync(() => child.kill("SIGKILL"))
  })

const MARK = "=== "

/** bash: the function `complete -p conclave` names, called as readline would (words split on blanks). */
const BASH = `
source "$SCRIPT"
fn=$(complete -p conclave | sed -E 's/.* -F ([^ ]+) .*/\\1/')
for line in "$@"; do
  read -ra W <<< "$line"
  [[ "$line" == *" " ]] && W+=("")
  COMP_WORDS=("\${W[@]}"); COMP_CWORD=$(( \${#W[@]} - 1 )); COMP_LINE="$line"; COMP_POINT=\${#line}
  COMPREPLY=()
  "$fn" conclave "\${W[COMP_CWORD]}" "\${W[COMP_CWORD-1]}"
  printf '%s\\n' "${MARK}$line" "\${COMPREPLY[@]}"
done
`

/** zsh: an interactive zsh in a pseudo-terminal whose Tab records each `compadd` and then prints a mark. */
const ZSHRC = `
PS1='> '
autoload -Uz compinit && compinit -u -d "$ZDOTDIR/.zcompdump"
source "$SCRIPT"
compadd() {
  local a
  for a in "$@"; do
    [[ $a == -- ]] && break
    # calls that only collect matches into an array are not additions
    [[ $a == -[A-Za-z]#[OAD]* ]] && { builtin compadd "$@"; return }
  done
  local -a hits
  builtin compadd -O hits "$@"
  (( $#hits )) && print -rl -- $hits >> "$CAPTURE"
  builtin compadd "$@"
}
_capture_done() {
  compstate[insert]=''
  compstate[list]=''
  print -n -- "<\${(L):-TAB-DONE}>"
}
_capture_complete() {
  comppostfuncs=(_capture_done)
  _main_complete
}
zle -C capture-complete complete-word _capture_complete
bindkey '^I' capture-complete
`
const ZSH = `
zmodload zsh/zpty
zpty z "zsh -i"
for line in "$@"; do
  : > "$CAPTURE"
  zpty -w -n z "$line"$'\\t'
  zpty -r z out '*<tab-done>*' || { print -r -- "no completion for: $line"; exit 1 }
  print -r -- "${MARK}$line"
  sort -u "$CAPTURE"
  zpty -w -n z $'\\x15'
done
zpty -d z
`

/** fish: \`complete -C\` per line. */
const FISH = `
source $SCRIPT
for line in $argv
  echo "${MARK}$line"
  complete -C "$line" | string split -f1 \\t
end
true # (\`string split\` with nothing to split says 1)
`

const parse = (out: string): ReadonlyMap<string, ReadonlyArray<string>> => {
  const found = new Map<string, Array<string>>()
  let current: Array<string> | undefined
  for (const raw of out.split("\n")) {
    if (raw.startsWith(MARK)) {
      current = []
      found.set(raw.slice(MARK.length), current)
    } else if (current !== undefined && raw.trim() !== "") {
      current.push(raw.trim())
    }
  }
  return found
}

/** A `conclave` on PATH over a config with two registrations and two channel overrides. */
const fixture = (dir: string) =>
  Effect.gen(function*() {
    const config = LocalConfig.setOverride(
      LocalConfig.setOverride(
        LocalConfig.upsertRegistration(
          LocalConfig.upsertRegistration(LocalConfig.empty, { url: "ws://a.test", username: "aaron", machine: "m" }),
          { url: "wss://b.test", username: "aaron", machine: "m" }
        ),
        { server: "ws://a.test", channel: "ops", level: "converse" }
      ),
      { server: "wss://b.test", channel: "design", level: "notify" }
    )
    yield* LocalConfig.save(dir, config).pipe(Effect.orDie)
    const bin = Path.join(dir, "bin")
    Fs.mkdirSync(bin, { recursive: true })
    Fs.writeFileSync(
      Path.join(bin, "conclave"),
      `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} --config-dir ${
        JSON.stringify(dir)
      } "$@"\n`,
      { mode: 0o755 }
    )
    return bin
  })

const completeAll = (shell: Shell, file: string, dir: string) =>
  Effect.gen(function*() {
    const bin = yield* fixture(dir)
    const script = Path.join(dir, `conclave.${shell}`)
    Fs.writeFileSync(script, (yield* ok(["completions", shell])).stdout)
    const home = Path.join(dir, "home")
    Fs.mkdirSync(home, { recursive: true })
    const env: NodeJS.ProcessEnv = {
      PATH: `${bin}:${process.env["PATH"] ?? ""}`,
      HOME: home,
      ZDOTDIR: home,
      XDG_CONFIG_HOME: Path.join(home, ".config"),
      XDG_DATA_HOME: Path.join(home, ".local/share"),
      TERM: "dumb",
      NO_COLOR: "1",
      SCRIPT: script,
      CAPTURE: Path.join(dir, "capture")
    }
    const lines = CASES.map((c) => c.line)
    if (shell === "zsh") Fs.writeFileSync(Path.join(home, ".zshrc"), ZSHRC)
    const out = shell === "bash"
      ? yield* run(file, ["-c", BASH, "bash", ...lines], env)
      : shell === "zsh"
      ? yield* run(file, ["-f", "-c", ZSH, "zsh", ...lines], env)
      : yield* run(file, ["--no-config", "-c", FISH, ...lines], env)
    return parse(out)
  })

const check = (shell: Shell, found: ReadonlyMap<string, ReadonlyArray<string>>) => {
  const failures: Array<string> = []
  for (const c of CASES) {
    const got = found.get(c.line)
    if (got === undefined) {
      failures.push(`${shell}: no answer for \`${c.line}\``)
      continue
    }
    const partialFlag = /--[a-z-]*$/.test(c.line)
    const shown = `\`${c.line}\` completed to [${got.join(" ")}]`
    if (c.exactly !== undefined) {
      const words = [...new Set(got.filter((w) => partialFlag || !w.startsWith("-")))].sort()
      if (words.join(" ") !== [...c.exactly].sort().join(" ")) {
        failures.push(`${shell}: ${shown}, expected [${c.exactly.join(" ")}]`)
      }
    }
    const missing = (c.includes ?? []).filter((w) => !got.includes(w))
    if (missing.length > 0) failures.push(`${shell}: ${shown}, missing ${missing.join(" ")}`)
    const extra = (c.excludes ?? []).filter((w) => got.includes(w))
    if (extra.length > 0) failures.push(`${shell}: ${shown}, should not offer ${extra.join(" ")}`)
  }
  assert.deepStrictEqual(failures, [], failures.join("\n"))
}

describe("completion scripts in the real shells (issue 23, item 6)", { timeout: 180_000 }, () => {
  for (const shell of SHELLS) {
    const file = pathOf(shell)
    if (file === undefined && !ci) {
      console.log(`skipped: no ${shell}`)
      continue
    }
    it.live(`${shell} completes verbs, flags and values`, () =>
      Effect.gen(function*() {
        if (file === undefined) return assert.fail(`no ${shell} (CI=true: .ci/run installs it)`)
        const dir = fileTempDir(`conclave-${shell}-`)
        check(shell, yield* completeAll(shell, file, dir))
      }))
  }
})

/** `conclave perm set act` on a terminal (zsh's zpty), answering `answer` to the question. */
const ASK = `
zmodload zsh/zpty
zpty p "$CONCLAVE perm set act; print EXIT=\\$?"
zpty -r p out '*\\[y/N\\] *' || { print -r -- "no question"; exit 1 }
print -r -- "$out"
zpty -w p "$ANSWER"
while zpty -r p line; do print -rn -- "$line"; done
true
`

describe("perm set act asks on a terminal (issue 23, item 7)", { timeout: 120_000 }, () => {
  const zsh = pathOf("zsh")
  if (zsh === undefined && !ci) return
  it.live("`n` cancels and changes nothing; `y` sets the level; without a terminal it goes ahead", () =>
    Effect.gen(function*() {
      if (zsh === undefined) return assert.fail("no zsh (CI=true: .ci/run installs it)")
      const dir = fileTempDir("conclave-ask-")
      const conclave = `${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} --config-dir ${JSON.stringify(dir)}`
      const ask = (answer: string) =>
        run(zsh, ["-f", "-c", ASK], { PATH: process.env["PATH"] ?? "", CONCLAVE: conclave, ANSWER: answer })
      const no = yield* ask("n")
      assert.include(no, "`act` lets the agent answer and act")
      assert.include(no, "Continue? [y/N]")
      assert.include(no, "cancelled: nothing changed")
      assert.include(no, "EXIT=1")
      assert.isFalse(Fs.existsSync(Path.join(dir, "config.toml")), "nothing written")
      const yes = yield* ask("y")
      assert.include(yes, "default permission set to act")
      assert.include(yes, "EXIT=0")
      assert.include(Fs.readFileSync(Path.join(dir, "config.toml"), "utf8"), "act")
      // No terminal (scripts, agents): nobody to ask.
      const piped = yield* ok(["perm", "set", "act"], { configDir: fileTempDir("conclave-ask-") })
      assert.include(piped.stdout, "default permission set to act")
      assert.notInclude(piped.stderr, "[y/N]")
    }))
})
