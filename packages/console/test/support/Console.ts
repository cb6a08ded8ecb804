// What the browser suites share: a running server's channels and posters, the console's sign-in
// link, and the measurements file that BENCHMARKS.md quotes.
import { Connection, type Identity } from "@conclave/client"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { connectAs } from "../../../bridge/test/E2E.js"
import { ok } from "../../../cli/test/support/Harness.js"
import { type Browser, step } from "./Browser.js"

const here = Path.dirname(fileURLToPath(import.meta.url))
export const DIST = Path.resolve(here, "../../dist")
export const ROOT = Path.resolve(here, "../../../..")
const MEASUREMENTS = Path.join(DIST, "..", "measurements.json")

/** Record a measurement (BENCHMARKS.md quotes them), kept with those of the other browser suites. */
export const record = (name: string, value: number | string) => {
  console.log(`measure: ${name} = ${value}`)
  let measurements: Record<string, unknown> = {}
  try {
    measurements = JSON.parse(Fs.readFileSync(MEASUREMENTS, "utf8")) as Record<string, unknown>
  } catch {
    // none yet
  }
  measurements[name] = value
  Fs.writeFileSync(MEASUREMENTS, JSON.stringify(measurements, null, 2) + "\n")
}

/**
 * Timing targets measure the host as much as the page: on a host busier than its CPU count (shared
 * build machines) the browser is descheduled mid-task. They are asserted on a quiet host (CI) and
 * only reported, with the load, otherwise.
 */
export const quietHost = () => {
  const load = Os.loadavg()[0]!
  record("load average (1 min)", load.toFixed(1))
  const quiet = load < Os.cpus().length
  if (!quiet) {
    console.log(
      `note: load average ${load.toFixed(1)} on ${Os.cpus().length} CPUs: timing targets reported, not asserted`
    )
  }
  return quiet
}

export const createChannel = (url: string, identity: Identity.Identity, name: string) =>
  Effect.scoped(Effect.gen(function*() {
    const c = yield* connectAs(url, identity, "cli-setup")
    yield* c.request({ type: "admin", op: { kind: "create_channel", name, visibility: "public" } }).pipe(Effect.orDie)
  }))

/** `conclave console --server URL` run where `configDir`'s enrolled key lives: the link it prints. */
export const consoleLink = (configDir: string, url: string) =>
  Effect.map(ok(["console", "--server", url], { configDir }), (r) => r.stdout.trim())

/** Open the link and wait until the console shows its channels. */
export const signIn = (browser: Browser, link: string) =>
  step("sign in", async () => {
    await browser.page.goto(link)
    await browser.page.waitForSelector(".shell .topbar .me:not(:empty)", { timeout: 15_000 })
  })

export const openChannel = (browser: Browser, name: string) =>
  step(`open #${name}`, async () => {
    await browser.page.click(`.nav-item:has-text("#${name}")`)
    await browser.page.waitForSelector(`.channel-header h1:text-is("#${name}")`)
  })

/** A client that posts as an agent (client kind bridge), or as a human CLI. */
export const poster = (
  url: string,
  identity: Identity.Identity,
  channel: string,
  client: "bridge" | "cli" = "bridge"
) =>
  Effect.gen(function*() {
    const c = yield* Connection.connect({ url, handle: `poster-${client}`, client, identity }).pipe(Effect.orDie)
    yield* c.request({ type: "join", channel, token: null }).pipe(Effect.orDie)
    const post = (text: string, replyTo: number | null = null) =>
      c.request({ type: "channel_msg", channel, payload: { kind: "plain", text }, reply_to: replyTo }).pipe(
        Effect.orDie,
        Effect.map((ack) => (ack.type === "ack" ? ack.seq ?? -1 : -1))
      )
    return { connection: c, post } as const
  })
