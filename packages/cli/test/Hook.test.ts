// `conclave hook claude` (D-52): what it accepts on stdin and what it prints, in process; the e2e
// test (packages/bridge/test/hook.e2e.test.ts) runs it against a real bridge.
import { tempDir } from "@conclave/testkit/TempDir"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { PassThrough } from "node:stream"
import { parseInput, render, runClaudeHook } from "../src/Hook.js"

describe("conclave hook claude: input and output", () => {
  it("accepts Claude Code's UserPromptSubmit and Stop JSON, and empty input (a run by hand)", () => {
    assert.deepStrictEqual(parseInput(""), { event: "UserPromptSubmit", stopHookActive: false })
    assert.deepStrictEqual(parseInput(JSON.stringify({ hook_event_name: "UserPromptSubmit", prompt: "x" })), {
      event: "UserPromptSubmit",
      stopHookActive: false
    })
    assert.deepStrictEqual(parseInput(JSON.stringify({ hook_event_name: "Stop", stop_hook_active: true })), {
      event: "Stop",
      stopHookActive: true
    })
    assert.deepStrictEqual(parseInput(JSON.stringify({ hook_event_name: "Stop", stop_hook_active: "yes" })), {
      event: "Stop",
      stopHookActive: false
    })
  })

  it("refuses anything else with the reason", () => {
    assert.include(parseInput("{") as string, "not JSON")
    assert.include(parseInput("42") as string, "JSON object")
    assert.include(parseInput("[]") as string, "JSON object")
    assert.include(parseInput("{}") as string, "not an input without hook_event_name")
    assert.include(parseInput(JSON.stringify({ hook_event_name: "SessionStart" })) as string, "not `SessionStart`")
  })

  it("prints nothing without items, and one JSON object with the items joined by a blank line otherwise", () => {
    assert.strictEqual(render("Stop", []), "")
    assert.deepStrictEqual(JSON.parse(render("Stop", ["<channel a>", "<whisper b>"])), {
      hookSpecificOutput: { hookEventName: "Stop", additionalContext: "<channel a>\n\n<whisper b>" }
    })
  })

  it.scoped(
    "without a bridge: nothing on stdout, no error; a stdin that never ends is not waited on forever",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir()
        const stdin = new PassThrough()
        const stdout = new PassThrough()
        let printed = ""
        stdout.on("data", (b: Buffer) => (printed += b.toString("utf8")))
        stdin.write(JSON.stringify({ hook_event_name: "UserPromptSubmit" }))
        const problem = yield* Effect.promise(() => runClaudeHook({ configDir: dir, stdin, stdout, env: {}, ppid: 1 }))
        assert.isUndefined(problem)
        assert.strictEqual(printed, "")
      }),
    { timeout: 10_000 }
  )
})
