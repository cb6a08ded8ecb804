// Debian's Chromium driven by playwright-core (never a downloaded browser): headless, with the flags
// the issue names and a fresh profile directory per context.
import { tempDir } from "@conclave/testkit/TempDir"
import { Effect, type Scope } from "effect"
import * as Fs from "node:fs"
import { type BrowserContext, chromium, type Page } from "playwright-core"

export const CHROMIUM = "/usr/bin/chromium"
export const haveChromium = Fs.existsSync(CHROMIUM)

export const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run"
] as const

export interface Browser {
  readonly context: BrowserContext
  readonly page: Page
  /** Messages the page logged with console.error, and CSP violations it reported. */
  readonly problems: Array<string>
}

/** A fresh browser profile (its own --user-data-dir) with one page; closed with the scope. */
export const launch = (
  options: { readonly width?: number; readonly height?: number; readonly dark?: boolean } = {}
): Effect.Effect<Browser, never, Scope.Scope> =>
  Effect.gen(function*() {
    const profile = yield* tempDir("conclave-chromium-")
    const context = yield* Effect.acquireRelease(
      Effect.promise(() =>
        chromium.launchPersistentContext(profile, {
          executablePath: CHROMIUM,
          headless: true,
          args: [...FLAGS],
          viewport: { width: options.width ?? 1280, height: options.height ?? 800 },
          colorScheme: options.dark === true ? "dark" : "light"
        })
      ),
      (context) => Effect.promise(() => context.close().catch(() => undefined))
    )
    const page = context.pages()[0] ?? (yield* Effect.promise(() => context.newPage()))
    const problems: Array<string> = []
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(message.text())
    })
    page.on("pageerror", (error) => problems.push(`pageerror: ${error.message}`))
    return { context, page, problems }
  })

/** Run a Playwright step; a failure fails the test with its message. */
export const step = <A>(what: string, run: () => Promise<A>): Effect.Effect<A> =>
  Effect.tryPromise({ try: run, catch: (e) => new Error(`${what}: ${e instanceof Error ? e.message : String(e)}`) })
    .pipe(Effect.orDie)
