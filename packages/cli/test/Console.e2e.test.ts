// `conclave serve` serving the web console and `conclave console` printing enrollment links (D-51),
// with the real binary as child processes.
import { Connection, Identity } from "@conclave/client"
import { fileTempDir } from "@conclave/testkit/TempDir"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option, Stream } from "effect"
import * as Http from "node:http"
import { assertBuilt, ko, ok, spawnServe, subdir } from "./support/Harness.js"

assertBuilt()

const root = fileTempDir("conclave-console-")
const dir = (name: string) => subdir(root, name)
const serve = spawnServe

const get = (url: string) =>
  Effect.async<{ status: number; headers: Http.IncomingHttpHeaders; body: string }, Error>((resume) => {
    const req = Http.get(url, (res) => {
      let body = ""
      res.on("data", (c) => (body += c))
      res.on("end", () => resume(Effect.succeed({ status: res.statusCode ?? 0, headers: res.headers, body })))
    })
    req.on("error", (e) => resume(Effect.fail(e)))
  })

describe("the web console from the real binary (D-51)", { timeout: 90_000 }, () => {
  it.scopedLive("serve serves the built console; --no-console turns it off; bad --console-origin is refused", () =>
    Effect.gen(function*() {
      const { http } = yield* serve([])
      const page = yield* get(`${http}/console/`)
      assert.strictEqual(page.status, 200)
      assert.include(String(page.headers["content-security-policy"]), "default-src 'self'")
      const script = /src="(\/console\/assets\/[^"]+\.js)"/.exec(page.body)
      assert.isNotNull(script, page.body)
      // no inline script: every <script> has a src
      assert.notMatch(page.body, /<script(?![^>]*\bsrc=)[^>]*>/)
      const js = yield* get(`${http}${script![1]}`)
      assert.strictEqual(js.status, 200)
      assert.strictEqual(js.headers["content-type"], "text/javascript; charset=utf-8")

      const off = yield* serve(["--no-console"])
      assert.strictEqual((yield* get(`${off.http}/console/`)).status, 404)
      assert.strictEqual((yield* get(`${off.http}/health`)).status, 200)

      for (const bad of ["not an origin", "https://a.example/path", "ftp://a.example"]) {
        const refused = yield* ko(["serve", "--ephemeral", "--bind", "127.0.0.1:0", "--console-origin", bad])
        assert.include(refused.stderr, `invalid --console-origin \`${bad}\``)
      }
    }))

  it.scopedLive("console prints a single-use link from an enrolled machine; errors say what to do", () =>
    Effect.gen(function*() {
      const { http, url } = yield* serve([])
      const aaron = dir("aaron")
      yield* ok(["register", "--server", url, "--username", "aaron", "--machine", "box"], { configDir: aaron })

      const link = yield* ok(["console", "--server", url], { configDir: aaron })
      const lines = link.stdout.trim().split("\n")
      assert.strictEqual(lines.length, 1)
      assert.match(lines[0]!, new RegExp(`^${http}/console/#enroll=[A-Za-z0-9_-]{32}$`))
      assert.include(link.stderr, "single use")

      // the one registered server is the default; two links are two codes
      const again = yield* ok(["console", "--json"], { configDir: aaron })
      const parsed = JSON.parse(again.stdout) as { url: string; expires_at: string }
      assert.match(parsed.url, /#enroll=[A-Za-z0-9_-]{32}$/)
      assert.notStrictEqual(parsed.url, lines[0])
      const expires = Date.parse(parsed.expires_at) - Date.now()
      assert.isTrue(expires > 8 * 60_000 && expires <= 10 * 60_000, parsed.expires_at)

      const nobody = dir("nobody")
      const none = yield* ko(["console"], { configDir: nobody })
      assert.include(none.stderr, "no server registered")
      yield* ok(["key"], { configDir: nobody })
      const unknown = yield* ko(["console", "--server", url], { configDir: nobody })
      assert.include(unknown.stderr, "unknown machine key")
      const badUrl = yield* ko(["console", "--server", "not a url"], { configDir: aaron })
      assert.notStrictEqual(badUrl.stderr, "")
    }))

  it.scopedLive("permit answers a relayed permission request of one's own session; bad input is refused clearly", () =>
    Effect.gen(function*() {
      const { url } = yield* serve([])
      const aaron = dir("permit-aaron")
      yield* ok(["register", "--server", url, "--username", "aaron", "--machine", "box"], { configDir: aaron })
      const { identity } = yield* Identity.loadOrCreate(aaron).pipe(Effect.orDie)
      const agent = yield* Connection.connect({ url, handle: "agent", client: "bridge", identity }).pipe(Effect.orDie)

      const sent = yield* ok(["permit", "aaron/box/agent", "abcde", "allow"], { configDir: aaron })
      assert.include(sent.stdout + sent.stderr, "allow sent to aaron/box/agent for request abcde")
      const verdict = Option.getOrThrow(
        yield* agent.unsolicited.pipe(
          Stream.filter((f) => f.type === "permission_verdict"),
          Stream.take(1),
          Stream.runHead
        )
      )
      assert.deepInclude(verdict, { request_id: "abcde", behavior: "allow" })

      const badPath = yield* ko(["permit", "aaron/box", "abcde", "allow"], { configDir: aaron })
      assert.include(badPath.stderr, "invalid session path `aaron/box`: expected user/machine/session")
      const badDecision = yield* ko(["permit", "aaron/box/agent", "abcde", "yes"], { configDir: aaron })
      assert.include(badDecision.stderr, "invalid decision `yes`: expected allow or deny")
      const badId = yield* ko(["permit", "aaron/box/agent", "x".repeat(65), "deny"], { configDir: aaron })
      assert.include(badId.stderr, "invalid request id: 1 to 64 characters")
      const offline = yield* ko(["permit", "aaron/box/nobody", "abcde", "deny"], { configDir: aaron })
      assert.include(offline.stderr, "is not online")
      // another user's session is refused by the server
      const bob = dir("permit-bob")
      yield* ok(["register", "--server", url, "--username", "bob", "--machine", "box"], { configDir: bob })
      const foreign = yield* ko(["permit", "aaron/box/agent", "abcde", "allow"], { configDir: bob })
      assert.include(foreign.stderr, "only a session of user `aaron`")
      const missing = yield* ko(["permit", "aaron/box/agent"], { configDir: aaron })
      assert.notStrictEqual(missing.stderr, "")
    }))
})
