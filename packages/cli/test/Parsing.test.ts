// Issue 23, item 6: what a parse error says (missing arguments and flag values with the values they
// take, no `--wizard`), trimmed help, and completion scripts that complete values — the last run in
// a real bash against the real binary (Shells.e2e.test.ts runs all three shells).
import { LocalConfig } from "@conclave/client"
import { tempDir } from "@conclave/testkit/TempDir"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Cli from "../src/Cli.js"
import { assertBuilt, BIN, cli } from "./support/Harness.js"
import { ok } from "./support/InProcess.js"

assertBuilt()

describe("parse errors say what a value can be (issue 23, item 6)", () => {
  it("a missing <LEVEL>, <SHELL> or <TEXT> names the values and the usage", () => {
    assert.strictEqual(
      Cli.suggest(["perm", "set"]),
      "missing argument <LEVEL> for `conclave perm set`: one of mute, notify, converse, or act (usage: conclave perm set [--server URL] [--channel NAME] [--whisper] [--json] <LEVEL>)"
    )
    assert.include(Cli.suggest(["perm", "set", "--server", "ws://h", "--whisper"]), "missing argument <LEVEL>")
    assert.include(
      Cli.suggest(["completions"]),
      "missing argument <SHELL> for `conclave completions`: one of bash, zsh, or fish"
    )
    assert.include(
      Cli.suggest(["channel", "set-visibility", "--server", "ws://h", "ops"]),
      "missing argument <VISIBILITY> for `conclave channel set-visibility`: one of public, unlisted, or private"
    )
    assert.include(
      Cli.suggest(["send", "--server", "ws://h", "--channel", "c"]),
      "missing argument <TEXT> for `conclave send` (usage:"
    )
    // Complete commands parse on.
    assert.isUndefined(Cli.suggest(["perm", "set", "converse"]))
    assert.isUndefined(Cli.suggest(["send", "--server", "ws://h", "--channel", "c", "--", "--help"]))
    assert.isUndefined(Cli.suggest(["who", "--server", "ws://h"]), "an optional argument may be left out")
    assert.isUndefined(Cli.suggest(["bridge", "--loop-limit", "-1"]), "a negative number is a value, not a flag")
  })

  it("a flag without its value says what it takes", () => {
    assert.include(
      Cli.suggest(["join", "--server", "ws://h", "ops", "--perm"]),
      "flag `--perm` of `conclave join` needs a value: LEVEL, one of mute, notify, converse, or act"
    )
    assert.include(
      Cli.suggest(["join", "--server", "ws://h", "ops", "--perm", "--json"]),
      "flag `--perm` of `conclave join` needs a value"
    )
    assert.include(
      Cli.suggest(["channel", "create", "--server", "ws://h", "ops", "--visibility"]),
      "needs a value: VISIBILITY, one of public, unlisted, or private"
    )
    assert.include(Cli.suggest(["tail", "--server"]), "flag `--server` of `conclave tail` needs a value: URL (usage:")
  })

  it("a flag given twice says so, unless it is repeatable (the library said `Received unknown argument`)", () => {
    assert.include(
      Cli.suggest(["perm", "show", "--json", "--json"]),
      "flag `--json` of `conclave perm show` is given more than once: give it once (usage: conclave perm show"
    )
    assert.include(
      Cli.suggest(["serve", "--bind", "127.0.0.1:1", "--bind=127.0.0.1:2"]),
      "flag `--bind` of `conclave serve` is given more than once"
    )
    assert.isUndefined(
      Cli.suggest(["serve", "--admin", "a", "--admin", "b", "--public-url", "ws://a", "--public-url", "ws://b"])
    )
    assert.isUndefined(Cli.suggest(["bridge", "--server", "ws://a", "--server", "ws://b"]))
    assert.isUndefined(Cli.suggest(["send", "--server", "ws://h", "--channel", "c", "--", "--json", "--json"]))
  })

  it("there is no --wizard, at any depth", () => {
    assert.strictEqual(
      Cli.suggest(["--wizard"]),
      "there is no `--wizard`: every value is a flag or an argument (see `conclave --help`)"
    )
    assert.include(Cli.suggest(["perm", "set", "--wizard"]), "(see `conclave perm set --help`)")
    assert.isUndefined(Cli.suggest(["send", "--server", "ws://h", "--channel", "c", "--", "--wizard"]))
  })

  it.scopedLive("on the real binary: exit 1 with the message, nothing parsed further", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const level = yield* cli(["perm", "set"], { configDir: dir })
      assert.strictEqual(level.code, 1)
      assert.include(level.stderr, "error: missing argument <LEVEL> for `conclave perm set`: one of mute, notify")
      assert.notInclude(level.stderr, "Missing argument <LEVEL>\n")
      const wizard = yield* cli(["perm", "set", "--wizard"], { configDir: dir })
      assert.strictEqual(wizard.code, 1)
      assert.include(wizard.stderr, "there is no `--wizard`")
      assert.notInclude(wizard.stdout, "Wizard Mode")
      const twice = yield* cli(["perm", "show", "--json", "--json"], { configDir: dir })
      assert.strictEqual(twice.code, 1)
      assert.include(twice.stderr, "error: flag `--json` of `conclave perm show` is given more than once")
    }), 60_000)
})

describe("help, trimmed (issue 23, item 6)", () => {
  it("a verb's help: the full command, its own options once, no type boilerplate or built-ins", () => {
    const help = Cli.helpRequested(["perm", "set", "--help"])!
    assert.include(help, "$ conclave perm set [--server URL] [--channel NAME] [--whisper] [--json] <LEVEL>")
    for (const noise of ["A user-defined piece of text.", "A true or false value.", "This setting is optional."]) {
      assert.notInclude(help, noise)
    }
    for (const builtIn of ["--wizard", "--completions", "--log-level"]) assert.notInclude(help, builtIn)
    assert.include(help, "GLOBAL OPTIONS")
    assert.strictEqual(help.split("--config-dir DIR").length - 1, 1, "the global options once")
    assert.strictEqual(Cli.helpRequested(["perm", "set", "-h"]), help)
    // Repeatable flags are optional: shown in brackets.
    const serve = Cli.helpRequested(["serve", "--help"])!
    assert.include(serve, "[--admin USER[=PUBKEY]]...")
    assert.include(serve, "[--public-url URL]...")
    assert.include(Cli.helpRequested(["bridge", "--help"])!, "$ conclave bridge [--server URL]...")
    assert.isUndefined(Cli.helpRequested(["send", "--server", "ws://h", "--channel", "c", "--", "--help"]))
  })

  it("the root and a group list their commands, one line each, in SPEC order", () => {
    const root = Cli.helpRequested(["--help"])!
    assert.match(root, /^ {2}- serve +Run the central conclave server\.$/m)
    assert.isBelow(root.indexOf("  - serve "), root.indexOf("  - bridge "))
    assert.isBelow(root.indexOf("  - tail "), root.indexOf("  - who "))
    assert.notInclude(root, "--admin", "no verb's flags in the list")
    const perm = Cli.helpRequested(["perm", "--help"])!
    assert.include(perm, "$ conclave perm <command> [options]")
    assert.match(perm, /^ {2}- set +Set a local permission level/m)
    assert.match(perm, /^ {2}- show +Show the local permission policy/m)
  })

  it.effect("`conclave help <verb>` prints the same trimmed help", () =>
    Effect.gen(function*() {
      const r = yield* ok(["help", "perm", "set"])
      assert.strictEqual(r.stdout.trim(), Cli.helpRequested(["perm", "set", "--help"])!.trim())
    }))
})

/** Run the bash completion function for `line` (the last word is being completed); the candidates. */
const complete = (script: string, pathDir: string, words: ReadonlyArray<string>) =>
  Effect.async<ReadonlyArray<string>>((resume) => {
    const program = [
      `source ${JSON.stringify(script)}`,
      `COMP_WORDS=(${words.map((w) => JSON.stringify(w)).join(" ")})`,
      `COMP_CWORD=${words.length - 1}`,
      "_conclave_bash_completions conclave",
      "printf '%s\\n' \"${COMPREPLY[@]}\""
    ].join("\n")
    const child = execFile(
      "bash",
      ["-c", program],
      { env: { ...process.env, PATH: `${pathDir}:${process.env["PATH"] ?? ""}`, NO_COLOR: "1" }, timeout: 60_000 },
      (_error, stdout) => resume(Effect.succeed(stdout.split("\n").filter((l) => l !== "")))
    )
    return Effect.sync(() => child.kill("SIGKILL"))
  })

describe("completions complete values (issue 23, item 6)", () => {
  it.effect("zsh and fish scripts carry the values; no --wizard anywhere", () =>
    Effect.gen(function*() {
      const zsh = (yield* ok(["completions", "zsh"])).stdout
      assert.include(zsh, ":LEVEL:(mute notify converse act)")
      assert.include(zsh, ":VISIBILITY:(public unlisted private)")
      assert.include(zsh, ":SERVER:{compadd -- ${(f)\"$(conclave server list")
      assert.notInclude(zsh, "--wizard")
      const fish = (yield* ok(["completions", "fish"])).stdout
      assert.include(fish, "-l perm -r -f -a \"mute notify converse act\"")
      assert.notMatch(fish, /^complete -c conclave -l /m, "a flag's values only where the verb has it")
      assert.include(fish, "__fish_seen_subcommand_from completions\" -f -a \"bash zsh fish\"")
      assert.include(fish, "-l channel -r -f -a \"(conclave perm show")
      assert.notInclude(fish, "-l wizard")
      assert.strictEqual((yield* ok(["key", "--completions", "fish"])).stdout, fish, "the built-in flag gives the same")
    }))

  it.scopedLive(
    "bash completes levels, shells, visibilities, registered servers and channels with levels",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir()
        // A `conclave` on PATH over this test's config: two registrations, two channel overrides.
        const config = LocalConfig.setOverride(
          LocalConfig.setOverride(
            LocalConfig.upsertRegistration(
              LocalConfig.upsertRegistration(LocalConfig.empty, {
                url: "ws://a.test",
                username: "aaron",
                machine: "m"
              }),
              { url: "wss://b.test", username: "aaron", machine: "m" }
            ),
            { server: "ws://a.test", channel: "ops", level: "converse" }
          ),
          { server: "wss://b.test", channel: "design", level: "notify" }
        )
        yield* LocalConfig.save(dir, config).pipe(Effect.orDie)
        const bin = Path.join(dir, "bin")
        Fs.mkdirSync(bin)
        Fs.writeFileSync(
          Path.join(bin, "conclave"),
          `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} --config-dir ${
            JSON.stringify(dir)
          } "$@"\n`,
          { mode: 0o755 }
        )
        const script = Path.join(dir, "conclave.bash")
        Fs.writeFileSync(script, (yield* ok(["completions", "bash"])).stdout)

        assert.deepStrictEqual(yield* complete(script, bin, ["conclave", "perm", "set", ""]), [
          "mute",
          "notify",
          "converse",
          "act"
        ])
        assert.deepStrictEqual(yield* complete(script, bin, ["conclave", "perm", "set", "c"]), ["converse"])
        assert.deepStrictEqual(yield* complete(script, bin, ["conclave", "completions", ""]), ["bash", "zsh", "fish"])
        assert.deepStrictEqual(
          yield* complete(script, bin, ["conclave", "join", "--server", "ws://a.test", "x", "--perm", "n"]),
          [
            "notify"
          ]
        )
        assert.deepStrictEqual(
          yield* complete(script, bin, [
            "conclave",
            "channel",
            "create",
            "--server",
            "ws://a.test",
            "x",
            "--visibility",
            ""
          ]),
          ["public", "unlisted", "private"]
        )
        assert.deepStrictEqual(yield* complete(script, bin, ["conclave", "who", "--server", ""]), [
          "ws://a.test",
          "wss://b.test"
        ])
        assert.deepStrictEqual(
          yield* complete(script, bin, ["conclave", "send", "--server", "ws://a.test", "--channel", ""]),
          ["design", "ops"]
        )
        // A flag's value is not completed as a positional; flags still complete, without --wizard.
        assert.deepStrictEqual(yield* complete(script, bin, ["conclave", "perm", "set", "--server", "x"]), [])
        const flags = yield* complete(script, bin, ["conclave", "perm", "set", "--"])
        assert.include(flags, "--channel")
        assert.notInclude(flags, "--wizard")
      }),
    180_000
  )
})
