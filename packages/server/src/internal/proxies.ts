/**
 * `--trust-proxy CIDR` (issue 22): the client address of a request is its socket's peer, unless that
 * peer is a trusted proxy; then it is read from `X-Forwarded-For`, right to left, skipping the
 * trusted hops — the first hop no trusted proxy vouches for is the client. A header from anyone
 * else is ignored, so a direct client cannot pick the address its limits are counted under.
 *
 * @internal
 */
import * as Either from "effect/Either"
import * as Net from "node:net"

/** A parsed CIDR block. @internal */
export interface Cidr {
  readonly address: string
  readonly prefix: number
  readonly family: "ipv4" | "ipv6"
}

/** The address without an IPv4-mapped IPv6 prefix or a zone. @internal */
export const normalizeAddress = (address: string): string => {
  const bare = address.replace(/%.*$/, "")
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(bare) ? bare.slice(7) : bare
}

/**
 * Parse `a.b.c.d/n`, `v6/n`, or a bare address (a block of one).
 *
 * @internal
 */
export const parseCidr = (value: string): Either.Either<Cidr, string> => {
  const trimmed = value.trim()
  const slash = trimmed.indexOf("/")
  const address = normalizeAddress(slash < 0 ? trimmed : trimmed.slice(0, slash))
  const version = Net.isIP(address)
  if (version === 0) return Either.left(`invalid --trust-proxy \`${value}\`: expected an address or CIDR block`)
  const max = version === 4 ? 32 : 128
  const rawPrefix = slash < 0 ? String(max) : trimmed.slice(slash + 1)
  const prefix = /^\d{1,3}$/.test(rawPrefix) ? Number(rawPrefix) : NaN
  if (!(prefix >= 0 && prefix <= max)) {
    return Either.left(`invalid --trust-proxy \`${value}\`: the prefix length must be 0..${max}`)
  }
  return Either.right({ address, prefix, family: version === 4 ? "ipv4" : "ipv6" })
}

/** Which peers are trusted proxies, and the client address they forward. @internal */
export class TrustedProxies {
  private readonly list = new Net.BlockList()
  readonly size: number

  constructor(blocks: ReadonlyArray<Cidr>) {
    for (const block of blocks) this.list.addSubnet(block.address, block.prefix, block.family)
    this.size = blocks.length
  }

  /** Whether `address` is one of the trusted proxies. */
  trusts(address: string): boolean {
    if (this.size === 0) return false
    const bare = normalizeAddress(address)
    const version = Net.isIP(bare)
    return version !== 0 && this.list.check(bare, version === 4 ? "ipv4" : "ipv6")
  }

  /**
   * The client address of a request from `peer` carrying `forwardedFor` (`X-Forwarded-For`, one
   * header or several): `peer` itself unless it is trusted.
   */
  clientAddress(peer: string, forwardedFor: string | ReadonlyArray<string> | undefined): string {
    let client = normalizeAddress(peer)
    if (forwardedFor === undefined || !this.trusts(client)) return client
    const hops = (typeof forwardedFor === "string" ? forwardedFor : forwardedFor.join(","))
      .split(",")
      .map((hop) => normalizeAddress(hop.trim().replace(/^\[([^\]]*)\](?::\d+)?$/, "$1")))
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i]!
      // a hop that is not an address ends the chain: the last trusted proxy is the client's address
      if (Net.isIP(hop) === 0) return client
      client = hop
      if (!this.trusts(hop)) return hop
    }
    return client
  }
}
