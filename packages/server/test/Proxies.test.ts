import { assert, describe, it } from "@effect/vitest"
import * as Either from "effect/Either"
import { parseCidr, TrustedProxies } from "../src/internal/proxies.js"
import { checkTrustProxy } from "../src/ServerConfig.js"

const trusted = (...blocks: ReadonlyArray<string>) =>
  new TrustedProxies(blocks.map((b) => Either.getOrThrow(parseCidr(b))))

describe("--trust-proxy (issue 22)", () => {
  it("parses addresses and CIDR blocks, v4 and v6", () => {
    assert.deepStrictEqual(Either.getOrThrow(parseCidr("10.0.0.0/8")), {
      address: "10.0.0.0",
      prefix: 8,
      family: "ipv4"
    })
    assert.deepStrictEqual(Either.getOrThrow(parseCidr("127.0.0.1")), {
      address: "127.0.0.1",
      prefix: 32,
      family: "ipv4"
    })
    assert.deepStrictEqual(Either.getOrThrow(parseCidr("fd00::/8")), { address: "fd00::", prefix: 8, family: "ipv6" })
  })

  it("refuses what is not an address or CIDR block, naming it", () => {
    for (
      const bad of ["", "proxy.local", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/x", "::1/129", "1.2.3/8", "10.0.0.0/-1"]
    ) {
      const parsed = parseCidr(bad)
      assert.isTrue(Either.isLeft(parsed), bad)
      if (Either.isLeft(parsed)) assert.include(parsed.left, `invalid --trust-proxy \`${bad}\``)
    }
    assert.isTrue(Either.isLeft(checkTrustProxy(["10.0.0.0/8", "nope"])))
    assert.isTrue(Either.isRight(checkTrustProxy(["10.0.0.0/8", "::1"])))
  })

  it("reads X-Forwarded-For only from a trusted peer, right to left past trusted hops", () => {
    const proxies = trusted("10.0.0.0/8", "::1")
    // an untrusted peer's header is ignored
    assert.strictEqual(proxies.clientAddress("203.0.113.9", "1.1.1.1"), "203.0.113.9")
    assert.strictEqual(trusted().clientAddress("10.0.0.2", "1.1.1.1"), "10.0.0.2")
    // a trusted peer: the rightmost untrusted hop (a client cannot prepend its way out)
    assert.strictEqual(proxies.clientAddress("10.0.0.2", "6.6.6.6, 198.51.100.7"), "198.51.100.7")
    assert.strictEqual(proxies.clientAddress("::ffff:10.0.0.2", ["6.6.6.6", "198.51.100.7, 10.1.1.1"]), "198.51.100.7")
    assert.strictEqual(proxies.clientAddress("::1", "[2001:db8::5]:4444"), "2001:db8::5")
    // no header, or one that names no address: the proxy itself
    assert.strictEqual(proxies.clientAddress("10.0.0.2", undefined), "10.0.0.2")
    assert.strictEqual(proxies.clientAddress("10.0.0.2", "unknown"), "10.0.0.2")
    // every hop trusted: the leftmost
    assert.strictEqual(proxies.clientAddress("10.0.0.2", "10.9.9.9, 10.0.0.3"), "10.9.9.9")
  })
})
