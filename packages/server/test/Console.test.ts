import { dial, expectType, startServer, tempDir } from "@conclave/testkit"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Path from "node:path"
import { CONTENT_SECURITY_POLICY, normalizeOrigin, originAllowed } from "../src/ConsoleAssets.js"

interface Answer {
  readonly status: number
  readonly headers: Http.IncomingHttpHeaders
  readonly body: string
}

/** One request with the path sent as given (no client-side normalisation of `..`). */
const request = (url: string, method: string, path: string) =>
  Effect.async<Answer, Error>((resume) => {
    const { hostname, port } = new URL(url)
    const req = Http.request({ host: hostname, port, method, path }, (res) => {
      let body = ""
      res.on("data", (c) => (body += c))
      res.on("end", () => resume(Effect.succeed({ status: res.statusCode ?? 0, headers: res.headers, body })))
    })
    req.on("error", (e) => resume(Effect.fail(e)))
    req.end()
  })

/** A built console's shape: index.html and a hashed script under assets/. */
const fakeBuild = Effect.gen(function*() {
  const dir = yield* tempDir()
  const out = Path.join(dir, "console-dist")
  Fs.mkdirSync(Path.join(out, "assets"), { recursive: true })
  Fs.writeFileSync(
    Path.join(out, "index.html"),
    "<!doctype html><script type=module src=/console/assets/app-1.js></script>"
  )
  Fs.writeFileSync(Path.join(out, "assets", "app-1.js"), "console.log(1)")
  Fs.writeFileSync(Path.join(dir, "secret.txt"), "not for the web")
  return out
})

describe("the web console's routes (D-51)", () => {
  it.scopedLive("serves the built console at /console/ with a strict CSP, and nothing outside it", () =>
    Effect.gen(function*() {
      const consoleDir = yield* fakeBuild
      const { url } = yield* startServer({ consoleDir })

      const index = yield* request(url, "GET", "/console/")
      assert.strictEqual(index.status, 200)
      assert.strictEqual(index.headers["content-type"], "text/html; charset=utf-8")
      assert.strictEqual(index.headers["content-security-policy"], CONTENT_SECURITY_POLICY)
      assert.include(CONTENT_SECURITY_POLICY, "default-src 'self'")
      assert.notInclude(CONTENT_SECURITY_POLICY, "unsafe-inline")
      assert.strictEqual(index.headers["x-content-type-options"], "nosniff")
      assert.strictEqual(index.headers["cache-control"], "no-cache")
      assert.include(index.body, "app-1.js")
      assert.strictEqual((yield* request(url, "GET", "/console/index.html")).body, index.body)

      const script = yield* request(url, "GET", "/console/assets/app-1.js")
      assert.strictEqual(script.status, 200)
      assert.strictEqual(script.headers["content-type"], "text/javascript; charset=utf-8")
      assert.include(String(script.headers["cache-control"]), "immutable")
      assert.strictEqual(script.body, "console.log(1)")

      const head = yield* request(url, "HEAD", "/console/")
      assert.strictEqual(head.status, 200)
      assert.strictEqual(head.body, "")

      const bare = yield* request(url, "GET", "/console")
      assert.strictEqual(bare.status, 308)
      assert.strictEqual(bare.headers.location, "/console/")

      // bad inputs: traversal (raw and encoded), unknown files, bad encodings, other methods
      for (const path of ["/console/../secret.txt", "/console/%2e%2e/secret.txt", "/console/assets/../../secret.txt"]) {
        const answer = yield* request(url, "GET", path)
        assert.strictEqual(answer.status, 404, path)
        assert.notInclude(answer.body, "not for the web")
      }
      assert.strictEqual((yield* request(url, "GET", "/console/nope.js")).status, 404)
      assert.strictEqual((yield* request(url, "GET", "/console/%E0%A4%A")).status, 400)
      const post = yield* request(url, "POST", "/console/")
      assert.strictEqual(post.status, 405)
      assert.strictEqual(post.headers.allow, "GET, HEAD")
      // the other routes are untouched
      assert.strictEqual((yield* request(url, "GET", "/health")).status, 200)
      assert.strictEqual((yield* request(url, "GET", "/consolex")).status, 404)
    }))

  it.scopedLive("no console configured (--no-console): /console/ is 404; not built: 503 with the fix", () =>
    Effect.gen(function*() {
      const off = yield* startServer()
      assert.strictEqual((yield* request(off.url, "GET", "/console/")).status, 404)
      const dir = yield* tempDir()
      const missing = yield* startServer({ consoleDir: Path.join(dir, "not-built") })
      const answer = yield* request(missing.url, "GET", "/console/")
      assert.strictEqual(answer.status, 503)
      assert.include(answer.body, "npm install")
      assert.strictEqual((yield* request(missing.url, "GET", "/health")).status, 200)
    }))

  it.scopedLive("upgrades with an Origin are accepted only from the server's own origin or --console-origin", () =>
    Effect.gen(function*() {
      const { port, url } = yield* startServer({ consoleOrigins: ["https://console.example.com"] })
      const handshakeFrom = (origin: string | undefined) =>
        Effect.gen(function*() {
          const client = yield* dial(url, origin === undefined ? {} : { headers: { origin } })
          yield* client.send({ type: "hello", protocol_version: 1, session: "s", host: null, client: "console" })
          expectType(yield* client.next(), "challenge")
        })
      yield* handshakeFrom(undefined)
      yield* handshakeFrom(`http://127.0.0.1:${port}`)
      yield* handshakeFrom(`http://localhost:${port}`)
      yield* handshakeFrom(`https://127.0.0.1:${port}`)
      yield* handshakeFrom("https://console.example.com")
      for (
        const origin of [
          "http://evil.example",
          `http://evil.example:${port}`,
          "null",
          "file://",
          `http://127.0.0.1:${port + 1}`,
          "http://console.example.com",
          "not a url"
        ]
      ) {
        const refused = yield* Effect.either(dial(url, { headers: { origin } }))
        assert.isTrue(refused._tag === "Left", origin)
        if (refused._tag === "Left") assert.include(refused.left.message, "403", origin)
      }
    }))

  it("origins: normalisation and bad inputs", () => {
    assert.strictEqual(normalizeOrigin("https://Example.com:443"), "https://example.com")
    assert.strictEqual(normalizeOrigin("http://a.example:8080/"), "http://a.example:8080")
    for (
      const bad of [
        "null",
        "",
        "ftp://a.example",
        "https://a.example/path",
        "https://u:p@a.example",
        "https://a.example?q"
      ]
    ) {
      assert.isUndefined(normalizeOrigin(bad), bad)
    }
    const own = ["127.0.0.1:4390", "localhost:4390"]
    assert.isTrue(originAllowed(undefined, own, []))
    assert.isTrue(originAllowed("http://127.0.0.1:4390", own, []))
    assert.isFalse(originAllowed("http://127.0.0.1:4391", own, []))
    assert.isFalse(originAllowed("ws://127.0.0.1:4390", own, []))
    assert.isTrue(originAllowed("https://c.example", own, ["https://c.example/"]))
    assert.isFalse(originAllowed("https://c.example", own, ["not an origin"]))
  })
})
