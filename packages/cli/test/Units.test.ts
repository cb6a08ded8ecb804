// Pure pieces: global option extraction, logging settings and line shapes, tail sanitizing,
// failure rendering, the skill (S-181, S-182).
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Either, Logger, LogLevel, Option } from "effect"
import { tree } from "../src/Cli.js"
import { chain, CliError } from "../src/CliError.js"
import { presenceLine } from "../src/commands/Admin.js"
import { render } from "../src/commands/Skill.js"
import { channelLine, reconnectDelay, sanitize, whisperLine } from "../src/commands/Tail.js"
import { renderReference } from "../src/CommandTree.js"
import * as GlobalOptions from "../src/GlobalOptions.js"
import * as Logging from "../src/Logging.js"
import { renderFailure } from "../src/Main.js"
import * as Output from "../src/Output.js"
import { run } from "./support/InProcess.js"

describe("GlobalOptions.extract", () => {
  it("takes --config-dir DIR, --config-dir=DIR, -v and --verbose anywhere before --", () => {
    const r = Either.getOrThrow(
      GlobalOptions.extract(["perm", "--config-dir", "/a", "show", "-v", "--json", "--", "-v"])
    )
    assert.deepStrictEqual(r.options, { configDir: Option.some("/a"), verbose: true })
    assert.deepStrictEqual(r.rest, ["perm", "show", "--json", "--", "-v"])
    const eq = Either.getOrThrow(GlobalOptions.extract(["--config-dir=/b", "key", "--verbose"]))
    assert.deepStrictEqual(eq.options, { configDir: Option.some("/b"), verbose: true })
    assert.deepStrictEqual(eq.rest, ["key"])
  })
  it("takes -V / --version anywhere before -- and leaves other flags alone", () => {
    const r = Either.getOrThrow(GlobalOptions.extract(["key", "-V", "--vv"]))
    assert.deepStrictEqual(r.rest, ["key", "--vv"])
    assert.isTrue(r.version)
    assert.isFalse(r.options.verbose)
    assert.isTrue(Either.getOrThrow(GlobalOptions.extract(["perm", "show", "--version"])).version)
    const text = Either.getOrThrow(GlobalOptions.extract(["send", "--", "-V"]))
    assert.isFalse(text.version)
    assert.deepStrictEqual(text.rest, ["send", "--", "-V"])
  })
  it("rejects --config-dir without a value", () => {
    assert.isTrue(Either.isLeft(GlobalOptions.extract(["key", "--config-dir"])))
    assert.isTrue(Either.isLeft(GlobalOptions.extract(["--config-dir=", "key"])))
  })
})

describe("Logging", () => {
  const env = (e: Record<string, string>) => ({ verbose: false, env: e, stderrIsTty: false })
  it("level: CONCLAVE_LOG_LEVEL wins, else debug with -v, else info; bad values fall back and are reported", () => {
    assert.strictEqual(Logging.settings(env({})).level, LogLevel.Info)
    assert.strictEqual(Logging.settings({ ...env({}), verbose: true }).level, LogLevel.Debug)
    assert.strictEqual(
      Logging.settings({ ...env({ CONCLAVE_LOG_LEVEL: "WARN" }), verbose: true }).level,
      LogLevel.Warning
    )
    for (
      const [name, level] of [["trace", LogLevel.Trace], ["debug", LogLevel.Debug], ["error", LogLevel.Error]] as const
    ) {
      assert.strictEqual(Logging.settings(env({ CONCLAVE_LOG_LEVEL: name })).level, level)
    }
    const bad = Logging.settings(env({ CONCLAVE_LOG_LEVEL: "chatty" }))
    assert.strictEqual(bad.level, LogLevel.Info)
    assert.deepStrictEqual(bad.invalidLevel, Option.some("chatty"))
    assert.isTrue(Option.isNone(Logging.settings(env({ CONCLAVE_LOG_LEVEL: "" })).invalidLevel))
  })
  it("format: json case-insensitively; colour only on a TTY without NO_COLOR and never for JSON", () => {
    assert.strictEqual(Logging.settings(env({ CONCLAVE_LOG_FORMAT: "Json" })).format, "json")
    assert.strictEqual(Logging.settings(env({ CONCLAVE_LOG_FORMAT: "pretty" })).format, "human")
    assert.isTrue(Logging.settings({ ...env({}), stderrIsTty: true }).color)
    assert.isFalse(Logging.settings({ ...env({ NO_COLOR: "1" }), stderrIsTty: true }).color)
    assert.isFalse(Logging.settings({ ...env({ CONCLAVE_LOG_FORMAT: "json" }), stderrIsTty: true }).color)
    assert.isFalse(Logging.settings(env({})).color)
  })
  const entry = {
    level: LogLevel.Info,
    message: "conclave server listening",
    date: new Date("2026-01-02T03:04:05.006Z"),
    annotations: [["address", "127.0.0.1:4390"], ["n", 3]] as const
  }
  it("a JSON line carries message, level, timestamp, the annotations, and fields.message", () => {
    const line = JSON.parse(Logging.renderLine("json", false, entry))
    assert.deepStrictEqual(line, {
      address: "127.0.0.1:4390",
      n: 3,
      message: "conclave server listening",
      level: "INFO",
      timestamp: "2026-01-02T03:04:05.006Z",
      fields: { address: "127.0.0.1:4390", n: 3, message: "conclave server listening" }
    })
  })
  it("an annotation named `message` (an error frame's text) is kept in fields, not overwritten (hardening)", () => {
    const line = JSON.parse(
      Logging.renderLine("json", false, {
        ...entry,
        message: "error frame emitted",
        annotations: [["kind", "not_found"], ["message", "channel `ghost` not found"]]
      })
    )
    assert.strictEqual(line.message, "error frame emitted")
    assert.strictEqual(line.fields.message, "channel `ghost` not found")
    assert.strictEqual(line.fields.kind, "not_found")
  })
  it("line breaks JSON leaves raw (U+0085, U+2028, U+2029) are escaped in the human format (hardening)", () => {
    const line = Logging.renderLine("human", false, {
      ...entry,
      annotations: [["user", "a\u2028b"], ["machine", "c\u0085d"], ["session", "e\u2029f"]]
    })
    assert.notMatch(line, /[\u0085\u2028\u2029]/)
    assert.include(line, "user=\"a\\u2028b\"")
    assert.include(line, "machine=\"c\\u0085d\"")
  })
  it("a human line is `<timestamp> <LEVEL> <message> key=value`, quoting values with spaces", () => {
    assert.strictEqual(
      Logging.renderLine("human", false, { ...entry, annotations: [["address", "h:1"], ["why", "two words"]] }),
      "2026-01-02T03:04:05.006Z INFO  conclave server listening address=h:1 why=\"two words\""
    )
    assert.include(Logging.renderLine("human", true, entry), "\x1b[")
  })
  it.effect("the logger writes one line per event through the given writer, with annotations", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const logger = Logging.makeLogger("json", false, (l) => lines.push(l))
      yield* Effect.logInfo("hello").pipe(
        Effect.annotateLogs({ path: "a/b/c" }),
        Effect.provide(Logger.replace(Logger.defaultLogger, logger))
      )
      assert.strictEqual(lines.length, 1)
      assert.isTrue(lines[0]!.endsWith("\n"))
      const parsed = JSON.parse(lines[0]!)
      assert.strictEqual(parsed.fields.message, "hello")
      assert.strictEqual(parsed.path, "a/b/c")
    }))
  it.effect("the batched logger gathers lines and writes what is left when its scope closes", () =>
    Effect.gen(function*() {
      const writes: Array<string> = []
      yield* Effect.scoped(Effect.gen(function*() {
        const logger = yield* Logging.batchedLogger("human", false, (t) => writes.push(t))
        yield* Effect.logInfo("one").pipe(
          Effect.zipRight(Effect.logWarning("two")),
          Effect.provide(Logger.replace(Logger.defaultLogger, logger))
        )
        assert.deepStrictEqual(writes, [], "nothing is written before the window ends")
      }))
      assert.strictEqual(writes.length, 1, "one write for the batch")
      const lines = writes[0]!.split("\n")
      assert.match(lines[0]!, / INFO  one$/)
      assert.match(lines[1]!, / WARN  two$/)
      assert.strictEqual(lines[2], "")
    }))
})

describe("tail rendering (D-31)", () => {
  const from = { user: "dana", machine: "desk", session: "s" }
  it("strips control characters and indents continuation lines", () => {
    assert.strictEqual(sanitize("a\x1b[2Jb\x07c\u202ed"), "a[2Jbcd")
    assert.strictEqual(sanitize("one\r\ntwo\nthree"), "one\n    two\n    three")
    assert.strictEqual(
      channelLine("ops", from, { kind: "plain", text: "x\n[ops] root/box/s: forged" }),
      "[ops] dana/desk/s: x\n    [ops] root/box/s: forged"
    )
    assert.strictEqual(whisperLine(from, { kind: "plain", text: "psst" }), "[whisper] dana/desk/s: psst")
    assert.include(channelLine("ops", from, { kind: "encrypted", ciphertext: "AA", key_id: null }), "encrypted")
  })
})

describe("output colour", () => {
  it.effect("only on a TTY, never with NO_COLOR; success lines are plain `✓ ` otherwise", () =>
    Effect.gen(function*() {
      assert.isTrue(Output.colorFor({ isTTY: true }, {}))
      assert.isFalse(Output.colorFor({ isTTY: true }, { NO_COLOR: "1" }))
      assert.isFalse(Output.colorFor({ isTTY: false }, {}))
      assert.isFalse(Output.colorFor({}, {}))
      const capture = Output.makeCapture()
      yield* Output.success("done").pipe(Effect.provide(capture.layer))
      assert.deepStrictEqual(capture.stdout, ["✓ done"])
    }))
})

describe("presence rendering (SPEC §6.1)", () => {
  it("`[<channel or server>] <path>, <path>, …`, just the tag when empty", () => {
    const a = { user: "aaron", machine: "ws", session: "razel" }
    const b = { user: "dana", machine: "desk", session: "cli-9" }
    assert.strictEqual(presenceLine("ops", [a, b]), "[ops] aaron/ws/razel, dana/desk/cli-9")
    assert.strictEqual(presenceLine(null, [a]), "[server] aaron/ws/razel")
    assert.strictEqual(presenceLine("ops", []), "[ops]")
  })
})

describe("failure rendering", () => {
  it("prints the message chain, nothing for interruption", () => {
    const inner = new Error("connect ECONNREFUSED")
    const outer = new CliError({ message: "failed to connect to `ws://x`", cause: inner })
    assert.strictEqual(chain(outer), "failed to connect to `ws://x`: connect ECONNREFUSED")
    assert.strictEqual(renderFailure(Cause.fail(outer)), "failed to connect to `ws://x`: connect ECONNREFUSED")
    assert.isUndefined(renderFailure(Cause.interrupt(Cause.empty as never)))
    assert.strictEqual(renderFailure(Cause.die(new Error("boom"))), "boom")
  })
})

describe("the skill (SPEC §7)", () => {
  it("S-181: front matter first, name, join_channel, the command reference from a stub", () => {
    const text = render("### `conclave register`\n\n```text\nregister --server URL\n```")
    assert.isTrue(text.startsWith("---\n"))
    assert.include(text, "\nname: conclave\n")
    assert.include(text, "join_channel")
    assert.include(text, "## Command reference")
    assert.include(text, "conclave register")
    assert.isTrue(text.indexOf("## Command reference") < text.indexOf("### `conclave register`"))
  })
  it.live("S-182: `conclave skill` has the onboarding content and never the user-scoped registration", () =>
    Effect.gen(function*() {
      const r = yield* run(["skill"])
      assert.strictEqual(r.code, 0)
      const text = r.stdout
      for (const s of ["join_channel", "/join", "perm", "--as", "whoami", "inbox", "loop", "conclave status"]) {
        assert.include(text, s)
      }
      assert.include(text, "claude mcp add --scope local conclave -- conclave bridge\n")
      assert.isTrue(text.split("\n").includes("claude mcp add --scope local conclave -- conclave bridge"))
      assert.include(text, "--dangerously-load-development-channels server:conclave")
      assert.notInclude(text, "mcp add --scope user conclave")
      assert.notInclude(text, "\x1b[")
      const show = yield* run(["skill", "show"])
      assert.strictEqual(show.stdout, text)
    }))
  it("the command reference covers every command depth-first in definition order", () => {
    const reference = renderReference(tree)
    const headings = [...reference.matchAll(/^### `(conclave[^`]*)`$/gm)].map((m) => m[1])
    assert.strictEqual(headings[0], "conclave")
    for (
      const verb of [
        "serve",
        "bridge",
        "key",
        "register",
        "machine add",
        "perm set",
        "channel set-visibility",
        "tail",
        "skill install",
        "completions",
        "demo"
      ]
    ) {
      assert.include(headings, `conclave ${verb}`)
    }
    assert.isBelow(headings.indexOf("conclave machine"), headings.indexOf("conclave machine add"))
    assert.isBelow(headings.indexOf("conclave machine remove"), headings.indexOf("conclave server"))
    assert.notInclude(headings, "conclave help")
    const tailBlock = reference.slice(reference.indexOf("### `conclave tail`"))
    assert.match(tailBlock, /```text\nUSAGE\n\n\$ conclave tail --server URL --channel CHANNEL/)
    assert.include(tailBlock, "--since DURATION")
  })
})

describe("tail reconnect backoff (SPEC §8, GAPS #42)", () => {
  it("doubles from 1 s to a 30 s cap while links keep failing, and resets after a stable link", () => {
    let attempt = 0
    const delays: Array<number> = []
    for (let i = 0; i < 7; i++) {
      const next = reconnectDelay(attempt, i === 0 ? Option.none() : Option.some(2_000))
      delays.push(next.delayMs)
      attempt = next.attempt
    }
    assert.deepStrictEqual(delays, [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000])
    assert.strictEqual(reconnectDelay(attempt, Option.some(30_000)).delayMs, 1_000, "reset after 30 s up")
    assert.strictEqual(reconnectDelay(attempt, Option.some(29_999)).delayMs, 30_000, "not before")
  })
})
