import { AdminOps, ToolArgs } from "@conclave/client"
import { assert, describe, it } from "@effect/vitest"
import { Either } from "effect"

const decode = (tool: ToolArgs.ToolName, args: unknown): Either.Either<unknown, string> =>
  ToolArgs.decodeTool(tool, args)
const refused = (tool: ToolArgs.ToolName, args: unknown) => {
  const r = decode(tool, args)
  assert.isTrue(Either.isLeft(r), `${tool} ${JSON.stringify(args)} should be refused`)
  return Either.isLeft(r) ? r.left : ""
}

describe("ToolArgs: one schema per field", () => {
  it("every tool's JSON input schema is derived from its Effect Schema", () => {
    for (const [name, spec] of Object.entries(ToolArgs.Tools)) {
      const json = ToolArgs.jsonSchema(spec)
      assert.strictEqual(json.type, "object", name)
      assert.sameMembers(Object.keys(json.properties), [...spec.fields], name)
      assert.sameMembers([...(json.required ?? [])], [...spec.required], name)
      assert.notInclude(JSON.stringify(json), "$ref", name)
    }
    const send = ToolArgs.jsonSchema(ToolArgs.Tools.send_channel)
    assert.deepInclude(send.properties["reply_to"] as object, { type: "integer", minimum: 0 })
    const invite = ToolArgs.jsonSchema(ToolArgs.Tools.invite_create)
    assert.deepInclude(invite.properties["uses"] as object, { type: "integer", minimum: 1, maximum: 4294967295 })
    const perm = ToolArgs.jsonSchema(ToolArgs.Tools.set_perm)
    assert.deepInclude(perm.properties["level"] as object, { enum: ["mute", "notify", "converse", "act"] })
  })

  it("reply_to: wrong type, out of range, fractional are refused; absent is fine", () => {
    for (const v of ["4", -1, 1.5, 9007199254740992, true]) {
      assert.strictEqual(refused("send_channel", { channel: "o", text: "t", reply_to: v }), ToolArgs.REPLY_TO_TEXT)
    }
    assert.deepStrictEqual(
      decode("send_channel", { channel: "o", text: "t" }),
      Either.right({ channel: "o", text: "t" })
    )
    assert.deepStrictEqual(
      decode("send_channel", { channel: "o", text: "t", reply_to: null }),
      Either.right({ channel: "o", text: "t" })
    )
  })

  it("uses and expires_in_secs: wrong type and out of range", () => {
    for (const v of ["3", 0, -1, 4294967296, 2.5]) {
      assert.strictEqual(refused("invite_create", { channel: "o", uses: v }), ToolArgs.USES_TEXT)
    }
    for (const v of ["3", -1, 2.5, 9007199254740992]) {
      assert.strictEqual(refused("invite_create", { channel: "o", expires_in_secs: v }), ToolArgs.EXPIRES_TEXT)
    }
    assert.isTrue(Either.isRight(decode("invite_create", { channel: "o", uses: 4294967295, expires_in_secs: 0 })))
  })

  it("required fields: missing, empty or of another type read as missing, naming all of them", () => {
    assert.strictEqual(refused("send_channel", {}), "`channel` and `text` are required")
    assert.strictEqual(refused("send_channel", { channel: "", text: "t" }), "`channel` and `text` are required")
    assert.strictEqual(refused("send_channel", { channel: 5, text: "t" }), "`channel` and `text` are required")
    assert.strictEqual(refused("rename_channel", { name: "a" }), "`name` and `new_name` are required")
    assert.strictEqual(
      refused("set_visibility", { name: "a", visibility: "x" }),
      "`name` and a valid `visibility` are required"
    )
    assert.strictEqual(refused("submit_permission", { request_id: 7 }), "`request_id` is required")
  })

  it("levels, visibilities, durations, paths and booleans", () => {
    for (const v of ["Converse", " act", "loud", 3]) {
      assert.strictEqual(refused("set_perm", { level: v }), ToolArgs.LEVEL_TEXT)
    }
    assert.strictEqual(refused("set_perm", {}), ToolArgs.LEVEL_TEXT)
    assert.strictEqual(
      refused("join_channel", { channel: "o", perm: "bogus" }),
      "unknown permission level `bogus` (expected mute, notify, converse, or act)"
    )
    assert.strictEqual(refused("join_channel", { channel: "o", perm: 1 }), "`perm` must be a string")
    assert.strictEqual(refused("create_channel", { name: "o", visibility: "PUBLIC" }), ToolArgs.VISIBILITY_TEXT)
    assert.strictEqual(refused("catch_up", { channel: "o", since: "5w" }), "invalid `since`: invalid duration `5w`")
    assert.strictEqual(refused("catch_up", { channel: "o", since: 5 }), "`since` must be a string")
    assert.deepStrictEqual(
      decode("catch_up", { channel: "o", since: "2h" }),
      Either.right({ channel: "o", since: 7200 })
    )
    assert.strictEqual(refused("whisper", { target: "a/b", text: "t" }), ToolArgs.TARGET_PATH_TEXT)
    assert.strictEqual(refused("set_perm", { whisper: "yes", level: "act" }), "`whisper` must be a boolean")
    assert.strictEqual(refused("who", { server: 1 }), "`server` must be a string")
    assert.strictEqual(refused("who", [1]), "tool arguments must be a JSON object")
  })

  it("decision: exactly \"allow\" allows, anything else denies", () => {
    for (const [v, want] of [["allow", "allow"], ["Allow", "deny"], [1, "deny"], [undefined, "deny"]] as const) {
      const r = ToolArgs.decodeTool("submit_permission", { request_id: "r", decision: v })
      assert.strictEqual(Either.getOrThrow(r).decision ?? "deny", want)
    }
  })

  it("CLI text: integers are digits only, then the field's rule", () => {
    const text = ToolArgs.integerText(ToolArgs.Uses)
    for (const v of ["", "x", "-1", "+1", "1.0", "0", "4294967296"]) {
      assert.isTrue(Either.isLeft(ToolArgs.decodeText(text, v)), v)
    }
    assert.deepStrictEqual(ToolArgs.decodeText(text, " 7 "), Either.right(7))
    const refusing = ToolArgs.refusing(ToolArgs.Visibility, (v) => `no \`${v}\``)
    assert.deepStrictEqual(ToolArgs.decodeText(refusing, "secret"), Either.left("no `secret`"))
  })
})

describe("AdminOps: one builder", () => {
  it("applies the defaults and keeps only the op's fields", () => {
    assert.deepStrictEqual(
      AdminOps.make("create_channel", { name: "ops", server: "ws://x" } as AdminOps.Args<"create_channel">),
      { kind: "create_channel", name: "ops", visibility: "public" }
    )
    assert.deepStrictEqual(AdminOps.make("invite_create", { channel: "ops", uses: undefined }), {
      kind: "invite_create",
      channel: "ops",
      uses: null,
      expires_in_secs: null
    })
    assert.deepStrictEqual(AdminOps.make("kick", { channel: "ops", target: "a/b/c" }), {
      kind: "kick",
      channel: "ops",
      target: "a/b/c"
    })
  })
})
