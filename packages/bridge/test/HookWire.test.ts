// The hook wire (HookWire) and the inbox's take (D-52): names, bad requests and replies, and what
// one take removes.
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Os from "node:os"
import * as Path from "node:path"
import * as HookWire from "../src/HookWire.js"
import * as Inbox from "../src/Inbox.js"

describe("HookWire", () => {
  it("socket names round-trip; other names are not sockets", () => {
    assert.deepStrictEqual(HookWire.parseSocketName(HookWire.socketName(41, 42)), { clientPid: 41, bridgePid: 42 })
    for (const bad of ["41-42.sock.tmp", "x-1.sock", "1-2", "12345678901-1.sock", "-1-2.sock", "notes.txt"]) {
      assert.isUndefined(HookWire.parseSocketName(bad), bad)
    }
  })

  it("the socket dir is under the config dir unless that path is too long for a Unix socket", () => {
    assert.strictEqual(HookWire.socketDir("/home/u/.config/conclave"), "/home/u/.config/conclave/run")
    const long = HookWire.socketDir(Path.join("/tmp", "x".repeat(120)))
    assert.isTrue(long.startsWith(Os.tmpdir()))
    assert.isAtMost(Buffer.byteLength(Path.join(long, HookWire.socketName(4294967295, 4294967295))), 100)
    assert.strictEqual(long, HookWire.socketDir(Path.join("/tmp", "x".repeat(120))))
  })

  it("the client pid is CLAUDE_PID when it is a pid, else the parent", () => {
    assert.strictEqual(HookWire.clientPid({ CLAUDE_PID: "1234" }, 9), 1234)
    for (const bad of ["", "abc", "1", "0", "-5", "12345678901"]) {
      assert.strictEqual(HookWire.clientPid({ CLAUDE_PID: bad }, 9), 9)
    }
    assert.strictEqual(HookWire.clientPid({}, 9), 9)
  })

  it("hook candidates: CLAUDE_PID first, then the parent and its ancestors", () => {
    const c = HookWire.hookCandidates({ CLAUDE_PID: "777777" }, process.pid)
    assert.strictEqual(c[0], 777777)
    assert.strictEqual(c[1], process.pid)
    if (process.platform === "linux") assert.strictEqual(c[2], process.ppid)
    assert.deepStrictEqual(HookWire.hookCandidates({}, 1), [])
  })

  it("requests: only a take with a positive integer max_chars", () => {
    assert.deepStrictEqual(HookWire.decodeRequest(HookWire.encodeRequest({ op: "take", max_chars: 10 }).trim()), {
      op: "take",
      max_chars: 10
    })
    assert.strictEqual(HookWire.decodeRequest("{"), "not JSON")
    assert.strictEqual(HookWire.decodeRequest("null"), "not an object")
    assert.strictEqual(HookWire.decodeRequest(`{"op":"drop"}`), "unknown op")
    for (const max of ["0", "-1", "1.5", `"9"`, "null"]) {
      assert.strictEqual(
        HookWire.decodeRequest(`{"op":"take","max_chars":${max}}`),
        "max_chars must be a positive integer"
      )
    }
  })

  it("replies: an items array of strings, nothing else", () => {
    assert.deepStrictEqual(HookWire.decodeReply(HookWire.encodeReply(["a", "b"]).trim()), ["a", "b"])
    for (const bad of ["", "[", "[]", "{}", `{"items":"a"}`, `{"items":[1]}`]) {
      assert.isUndefined(HookWire.decodeReply(bad), bad)
    }
  })
})

describe("Inbox: one record of what is unsurfaced", () => {
  it.effect("take removes whole items that fit (at least one); drain sees only the rest", () =>
    Effect.gen(function*() {
      const inbox = yield* Inbox.make
      assert.deepStrictEqual(yield* inbox.take(100, "\n\n"), [])
      yield* inbox.remember("line a", "A".repeat(10))
      yield* inbox.remember("line b", "B".repeat(10))
      yield* inbox.remember("line c", "C".repeat(50))
      // 10 + 2 + 10 = 22 fits in 25; the third does not
      assert.deepStrictEqual(yield* inbox.take(25, "\n\n"), ["A".repeat(10), "B".repeat(10)])
      // a single item larger than the budget still goes (the harness truncates it)
      assert.deepStrictEqual(yield* inbox.take(5, "\n\n"), ["C".repeat(50)])
      assert.deepStrictEqual(yield* inbox.take(100, "\n\n"), [])
      yield* inbox.remember("line d", "D")
      const drained = yield* inbox.drain
      assert.include(drained, "1 item(s)")
      assert.include(drained, "line d")
      assert.notInclude(drained, "line a")
      assert.deepStrictEqual(yield* inbox.take(100, "\n\n"), [])
    }))
})
