/**
 * The authorities (`host:port`) a server answers as, from its own configuration only (D-3, the
 * hardening issue's relayed-handshake defect): its public URLs, and the address it is bound to with
 * that address's aliases — never a request's `Host` header, which a relaying server chooses.
 *
 * @internal
 */
import * as Os from "node:os"

const bracket = (host: string) => (host.includes(":") && !host.startsWith("[") ? `[${host}]` : host)

const withPort = (host: string, port: number): ReadonlyArray<string> => {
  const authority = `${bracket(host).toLowerCase()}:${port}`
  // a URL without a port names the scheme's default one
  return port === 80 || port === 443 ? [authority, bracket(host).toLowerCase()] : [authority]
}

const isWildcard = (host: string) => host === "" || host === "0.0.0.0" || host === "::" || host === "[::]"
const isLoopback = (host: string) =>
  host === "localhost" || host === "::1" || host === "[::1]" || host.startsWith("127.")

/**
 * The authorities of a listener bound to `host:port`: that address; for loopback also `localhost`,
 * `127.0.0.1` and `[::1]`; for a wildcard every local interface address, `localhost` and the machine's
 * host name.
 */
export const ofBinding = (host: string, port: number): ReadonlyArray<string> => {
  const hosts = new Set<string>()
  if (isWildcard(host)) {
    for (const addresses of Object.values(Os.networkInterfaces())) {
      for (const address of addresses ?? []) hosts.add(address.address.replace(/%.*$/, ""))
    }
    hosts.add("localhost")
    hosts.add(Os.hostname())
  } else {
    hosts.add(host)
  }
  if (isWildcard(host) || isLoopback(host)) {
    hosts.add("localhost")
    hosts.add("127.0.0.1")
    hosts.add("::1")
  }
  return [...hosts].flatMap((h) => withPort(h, port))
}

/** Whether a bind address is reachable from this machine only (no public URL needed). */
export const isLocalOnly = (host: string): boolean => isLoopback(host)

/** The mutable list a server fills once it knows where it listens (port 0 is resolved at bind). */
export class Authorities {
  private bound: ReadonlyArray<string> | undefined = undefined
  /** `publicUrls`: the authorities of the configured public URLs. */
  constructor(readonly publicUrls: ReadonlyArray<string>) {}
  /** Record the listener's address. */
  bind(host: string, port: number): void {
    this.bound = ofBinding(host, port)
  }
  /** Whether the listener's address is known (a mounted server learns it from its first connection). */
  get isBound(): boolean {
    return this.bound !== undefined
  }
  /** Every authority a signed handshake may name: the public URLs' first, then the binding's. */
  all(): ReadonlyArray<string> {
    return [...this.publicUrls, ...(this.bound ?? [])]
  }
}
