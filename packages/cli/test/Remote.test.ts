// Every server verb against a real server on a loopback port (S-166, S-167, S-171, S-174, D-29,
// D-30), the command tree run in process for speed. `aaron` is a server admin.
import { fileTempDir } from "@conclave/testkit/TempDir"
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { TestServer } from "./support/Harness.js"
import { ko, ok } from "./support/InProcess.js"

const root = fileTempDir()
const dirOf = (name: string) => {
  const dir = Path.join(root, name)
  Fs.mkdirSync(dir, { recursive: true })
  return dir
}
const configText = (dir: string) => {
  const file = Path.join(dir, "config.toml")
  return Fs.existsSync(file) ? Fs.readFileSync(file, "utf8") : ""
}
const HANDLE = `cli-${process.pid}`
const lines = (s: string) => s.trim().split("\n")

layer(TestServer.layer({ admins: ["aaron"] }), { timeout: 60_000, excludeTestServices: true })(
  "conclave server verbs (in process)",
  (it) => {
    const aaron = dirOf("aaron")
    const david = dirOf("david")
    const laptop = dirOf("laptop")
    let U = ""

    it.effect("register: prints the path, records the registration, --json has the documented shape", () =>
      Effect.gen(function*() {
        U = (yield* TestServer).url
        const r = yield* ok(["register", "--server", `${U}/`, "--username", "aaron", "--machine", "workstation"], {
          configDir: aaron
        })
        assert.strictEqual(r.stdout.trim(), `✓ registered aaron/workstation/${HANDLE}`)
        assert.include(configText(aaron), `url = "${U}"`)
        assert.include(configText(aaron), `username = "aaron"`)
        const j = yield* ok(["register", "--server", U, "--username", "david", "--machine", "desktop", "--json"], {
          configDir: david
        })
        const json = JSON.parse(j.stdout)
        assert.strictEqual(json.url, U)
        assert.strictEqual(json.username, "david")
        assert.strictEqual(json.machine, "desktop")
        assert.deepStrictEqual(json.path, { user: "david", machine: "desktop", session: HANDLE })
        assert.match(json.public_key, /^[A-Za-z0-9_-]{43}$/)
      }))

    it.effect("register errors: taken username, key already enrolled; config untouched, key kept", () =>
      Effect.gen(function*() {
        const eve = dirOf("eve")
        const taken = yield* ko(["register", "--server", U, "--username", "aaron"], { configDir: eve })
        assert.include(taken.stderr, "registration rejected: unauthorized: username `aaron` is already taken")
        assert.isTrue(Fs.existsSync(Path.join(eve, "key")), "the key file is created even when registration fails")
        assert.strictEqual(configText(eve), "", "no registration recorded")
        const again = yield* ko(["register", "--server", U, "--username", "aaron2"], { configDir: aaron })
        assert.include(again.stderr, "already enrolled")
        assert.notInclude(configText(aaron), "aaron2")
      }))

    it.effect("S-166: machine add / list / remove, perm set, channel create, join", () =>
      Effect.gen(function*() {
        const key = (yield* ok(["key"], { configDir: laptop })).stdout.trim()
        const add = yield* ok(["machine", "add", "--server", U, "--name", "laptop", "--pubkey", ` ${key}\n`], {
          configDir: aaron
        })
        assert.strictEqual(add.stdout.trim(), "✓ laptop")
        assert.include(add.stderr, `accept with: conclave server add ${U} --username aaron --machine laptop`)
        const list = yield* ok(["machine", "list", "--server", U], { configDir: aaron })
        const rows = lines(list.stdout).map((l) => l.split("\t"))
        assert.deepStrictEqual(rows.map((r) => r[0]).sort(), ["laptop", "workstation"])
        assert.isTrue(rows.some((r) => r[0] === "laptop" && r[1] === key))
        const json = JSON.parse((yield* ok(["machine", "list", "--server", U, "--json"], { configDir: aaron })).stdout)
        assert.deepStrictEqual(Object.keys(json.machines[0]).sort(), ["added_at", "name", "pubkey"])

        // D-29: record the second machine locally and verify it by authenticating once.
        const recorded = yield* ok(["server", "add", U, "--username", "aaron", "--machine", "laptop"], {
          configDir: laptop
        })
        assert.include(recorded.stdout, `✓ verified: authenticated as aaron/laptop/${HANDLE}`)
        assert.include(configText(laptop), `machine = "laptop"`)
        const wrong = yield* ko(["server", "add", U, "--username", "aaron", "--machine", "wrong"], {
          configDir: laptop
        })
        assert.include(wrong.stderr, "authenticates as aaron/laptop")
        yield* ok(["server", "add", U, "--username", "aaron", "--machine", "laptop"], { configDir: laptop })

        const removed = yield* ok(["machine", "remove", "--server", U, "laptop"], { configDir: aaron })
        assert.strictEqual(removed.stdout.trim(), "✓ laptop")
        const after = yield* ok(["machine", "list", "--server", U], { configDir: aaron })
        assert.notInclude(after.stdout, "laptop")
        const revoked = yield* ko(["who", "--server", U], { configDir: laptop })
        assert.include(revoked.stderr, "authentication rejected: unauthorized: unknown machine key")

        yield* ok(["perm", "set", "converse", "--server", U, "--channel", "ops"], { configDir: aaron })
        assert.include((yield* ok(["perm", "show"], { configDir: aaron })).stdout, `${U} ops -> converse`)
        const created = yield* ok(["channel", "create", "--server", U, "ops"], { configDir: aaron })
        assert.strictEqual(created.stdout.trim(), "✓ ops")
        const joined = yield* ok(["join", "--server", U, "ops"], { configDir: aaron })
        assert.strictEqual(joined.stdout.trim(), "✓ joined ops")
        assert.include(joined.stderr, "join_channel")
      }))

    it.effect("S-174: join --perm persists only after a successful join; a rejected join leaves config untouched", () =>
      Effect.gen(function*() {
        yield* ok(["channel", "create", "--server", U, "secret", "--visibility", "private"], { configDir: aaron })
        const before = configText(david)
        const denied = yield* ko(["join", "--server", U, "secret", "--perm", "converse"], { configDir: david })
        assert.include(denied.stderr, "not found: channel `secret` not found")
        assert.strictEqual(configText(david), before)
        const okJoin = yield* ok(["join", "--server", U, "ops", "--perm", "act", "--json"], { configDir: david })
        assert.deepStrictEqual(JSON.parse(okJoin.stdout), { joined: "ops", server: U, perm: "act" })
        assert.include((yield* ok(["perm", "show"], { configDir: david })).stdout, `${U} ops -> act`)
      }))

    it.effect("S-167: admin verbs are role-gated", () =>
      Effect.gen(function*() {
        yield* ok(["channel", "create", "--server", U, "staff", "--visibility", "private"], { configDir: aaron })
        yield* ok(["acl", "add", "--server", U, "--channel", "staff", "david"], { configDir: aaron })
        const token = yield* ok(["invite", "create", "--server", U, "--channel", "staff", "--uses", "1"], {
          configDir: aaron
        })
        assert.match(token.stdout.trim(), /^invite token: \S+$/)
        const users = yield* ok(["user", "list", "--server", U], { configDir: aaron })
        assert.include(lines(users.stdout), "aaron")
        assert.include(lines(users.stdout), "david")
        const denied = yield* ko(["user", "list", "--server", U], { configDir: david })
        assert.include(denied.stderr, "unauthorized")
        yield* ko(["channel", "delete", "--server", U, "staff"], { configDir: david })
        yield* ko(["invite", "create", "--server", U, "--channel", "staff"], { configDir: david })
      }))

    it.effect("channel list / rename / set-visibility / delete, text and --json", () =>
      Effect.gen(function*() {
        yield* ok(["channel", "create", "--server", U, "tmp", "--visibility", "unlisted"], { configDir: aaron })
        const list = yield* ok(["channel", "list", "--server", U], { configDir: aaron })
        assert.include(lines(list.stdout), "tmp\tunlisted\t(member)")
        assert.include(lines(list.stdout), "ops\tpublic\t(member)")
        const davidList = yield* ok(["channel", "list", "--server", U, "--json"], { configDir: david })
        const channels = JSON.parse(davidList.stdout).channels as Array<
          { name: string; visibility: string; member: boolean }
        >
        assert.deepStrictEqual(channels.find((c) => c.name === "ops"), {
          name: "ops",
          visibility: "public",
          member: false
        })
        assert.isUndefined(channels.find((c) => c.name === "tmp"), "unlisted channels are not listed to non-members")
        assert.strictEqual(
          (yield* ok(["channel", "rename", "--server", U, "tmp", "tmp2"], { configDir: aaron })).stdout.trim(),
          "✓ tmp2"
        )
        assert.strictEqual(
          (yield* ok(["channel", "set-visibility", "--server", U, "tmp2", "private"], { configDir: aaron })).stdout
            .trim(),
          "✓ tmp2"
        )
        const json = JSON.parse(
          (yield* ok(["channel", "delete", "--server", U, "tmp2", "--json"], { configDir: aaron })).stdout
        )
        assert.deepStrictEqual(json, { ok: true, detail: "tmp2" })
        const gone = yield* ko(["channel", "delete", "--server", U, "tmp2"], { configDir: aaron })
        assert.include(gone.stderr, "not found")
        const dup = yield* ko(["channel", "create", "--server", U, "ops"], { configDir: aaron })
        assert.include(dup.stderr, "already exists")
      }))

    it.effect("acl, invites, bans, kick, who: output formats and --json shapes", () =>
      Effect.gen(function*() {
        const acl = yield* ok(["acl", "list", "--server", U, "--channel", "staff"], { configDir: aaron })
        assert.deepStrictEqual(lines(acl.stdout).sort(), ["aaron", "david"])
        assert.strictEqual(
          (yield* ok(["acl", "remove", "--server", U, "--channel", "staff", "david"], { configDir: aaron })).stdout
            .trim(),
          "✓ david"
        )
        const aclJson = JSON.parse(
          (yield* ok(["acl", "list", "--server", U, "--channel", "staff", "--json"], { configDir: aaron })).stdout
        )
        assert.deepStrictEqual(aclJson, { users: ["aaron"] })

        const created = JSON.parse(
          (yield* ok(["invite", "create", "--server", U, "--channel", "staff", "--expires-in", "1h", "--json"], {
            configDir: aaron
          })).stdout
        )
        assert.isString(created.token)
        const invites = yield* ok(["invite", "list", "--server", U, "--channel", "staff"], { configDir: aaron })
        const row = lines(invites.stdout).find((l) => l.startsWith(created.token))
        assert.isDefined(row)
        assert.match(row!, /\tuses: unlimited\texpires: \d{4}-\d\d-\d\dT/)
        assert.isTrue(lines(invites.stdout).some((l) => /\tuses: 1\texpires: never$/.test(l)))
        const invitesJson = JSON.parse(
          (yield* ok(["invite", "list", "--server", U, "--channel", "staff", "--json"], { configDir: aaron })).stdout
        )
        assert.deepStrictEqual(Object.keys(invitesJson.invites[0]).sort(), ["expires_at", "token", "uses_remaining"])
        const joined = yield* ok(["join", "--server", U, "staff", "--token", created.token], { configDir: david })
        assert.strictEqual(joined.stdout.trim(), "✓ joined staff")
        assert.strictEqual(
          (yield* ok(["invite", "revoke", "--server", U, created.token], { configDir: aaron })).stdout.trim(),
          `✓ ${created.token}`
        )
        assert.strictEqual(
          (yield* ok(["invite", "revoke", "--server", U, "no-such-token"], { configDir: david })).stdout.trim(),
          "✓ no-such-token",
          "revoke answers uniformly"
        )

        assert.strictEqual(
          (yield* ok(["ban", "--server", U, "--channel", "ops", "david"], { configDir: aaron })).stdout.trim(),
          "✓ david"
        )
        assert.deepStrictEqual(
          lines((yield* ok(["bans", "--server", U, "--channel", "ops"], { configDir: aaron })).stdout),
          [
            "david"
          ]
        )
        const banned = yield* ko(["join", "--server", U, "ops"], { configDir: david })
        assert.include(banned.stderr, "banned")
        yield* ok(["unban", "--server", U, "--channel", "ops", "david"], { configDir: aaron })
        assert.deepStrictEqual(
          JSON.parse((yield* ok(["bans", "--server", U, "--channel", "ops", "--json"], { configDir: aaron })).stdout),
          { users: [] }
        )
        assert.strictEqual(
          (yield* ok(["kick", "--server", U, "--channel", "ops", "david"], { configDir: aaron })).stdout.trim(),
          "✓ david"
        )
        const who = yield* ok(["who", "--server", U], { configDir: aaron })
        assert.strictEqual(who.stdout.trim(), `[server] aaron/workstation/${HANDLE}`)
        const empty = yield* ok(["who", "--server", U, "ops"], { configDir: aaron })
        assert.strictEqual(empty.stdout, "[ops]\n", "an empty channel prints just its tag")
        const whoJson = JSON.parse((yield* ok(["who", "--server", U, "ops", "--json"], { configDir: aaron })).stdout)
        assert.strictEqual(whoJson.channel, "ops")
        assert.deepStrictEqual(whoJson.sessions, [])
      }))

    it.effect("send: ✓ sent, --json carries the seq, --reply-to is checked by the server; join rejections", () =>
      Effect.gen(function*() {
        const first = JSON.parse(
          (yield* ok(["send", "--server", U, "--channel", "ops", "--json", "hello", "world"], { configDir: aaron }))
            .stdout
        )
        assert.strictEqual(first.sent_to, "ops")
        assert.isNumber(first.seq)
        const reply = yield* ok(["send", "--server", U, "--channel", "ops", "--reply-to", String(first.seq), "re"], {
          configDir: david
        })
        assert.strictEqual(reply.stdout.trim(), "✓ sent to ops")
        const badReply = yield* ko(["send", "--server", U, "--channel", "ops", "--reply-to", "999999", "x"], {
          configDir: david
        })
        assert.include(badReply.stderr, "send rejected: not found")
        const nope = yield* ko(["send", "--server", U, "--channel", "nowhere", "x"], { configDir: david })
        assert.include(nope.stderr, "join rejected: not found: channel `nowhere` not found")
      }))

    it.effect("S-171: status lists reachability (not counting its own probe, G-43), then the permission table", () =>
      Effect.gen(function*() {
        const r = yield* ok(["status"], { configDir: aaron })
        const [first, blank, ...rest] = lines(r.stdout)
        assert.strictEqual(first, `${U}\taaron/workstation\treachable (0 session(s) online besides this probe)`)
        assert.strictEqual(blank, "")
        assert.include(rest, `${U} ops -> converse`)
        const json = JSON.parse((yield* ok(["status", "--json"], { configDir: aaron })).stdout)
        assert.deepStrictEqual(json.servers[0], {
          url: U,
          username: "aaron",
          machine: "workstation",
          reachable: true,
          sessions_online: 0,
          error: null
        })
        assert.strictEqual(json.permissions.default_permission, "notify")

        const ghost = dirOf("ghost")
        Fs.copyFileSync(Path.join(aaron, "key"), Path.join(ghost, "key"))
        Fs.writeFileSync(
          Path.join(ghost, "config.toml"),
          `[[servers]]\nurl = "${U}"\nusername = "aaron"\nmachine = "workstation"\n\n[[servers]]\nurl = "ws://127.0.0.1:1"\nusername = "aaron"\nmachine = "workstation"\n`
        )
        const down = yield* ko(["status"], { configDir: ghost })
        assert.include(down.stdout, `${U}\taaron/workstation\treachable`)
        assert.include(down.stdout, "ws://127.0.0.1:1\taaron/workstation\tunreachable: failed to connect")
        assert.include(down.stderr, "1 server(s) unreachable")
      }))

    it.effect("user remove (server admin) revokes the account", () =>
      Effect.gen(function*() {
        const mallory = dirOf("mallory")
        yield* ok(["register", "--server", U, "--username", "mallory"], { configDir: mallory })
        assert.strictEqual(
          (yield* ok(["user", "remove", "--server", U, "mallory"], { configDir: aaron })).stdout.trim(),
          "✓ mallory"
        )
        const gone = yield* ko(["who", "--server", U], { configDir: mallory })
        assert.include(gone.stderr, "unknown machine key")
      }))
  }
)
