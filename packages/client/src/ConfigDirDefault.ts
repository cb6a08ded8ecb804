/**
 * The per-user config directory for an environment (SPEC §5.1), with no Effect import: the
 * `conclave hook claude` fast path resolves it on every prompt (issue 21). `ConfigDir` re-exports it.
 *
 * @since 0.1.0
 */
import * as Os from "node:os"
import * as Path from "node:path"

/** @since 0.1.0 @category models */
export interface Environment {
  readonly platform: NodeJS.Platform
  readonly home: string
  readonly env: Readonly<Record<string, string | undefined>>
}

const nonEmpty = (s: string | undefined): s is string => s !== undefined && s !== ""

/**
 * The default directory for a given environment: Linux `$XDG_CONFIG_HOME/conclave` (absolute
 * values only, fallback `~/.config/conclave`), macOS `~/Library/Application Support/conclave`,
 * Windows `%APPDATA%\conclave`.
 *
 * @since 0.1.0
 * @category resolution
 */
export const defaultFor = (e: Environment): string => {
  if (e.platform === "darwin") return Path.join(e.home, "Library", "Application Support", "conclave")
  if (e.platform === "win32") {
    const appData = e.env["APPDATA"]
    return Path.win32.join(nonEmpty(appData) ? appData : Path.win32.join(e.home, "AppData", "Roaming"), "conclave")
  }
  const xdg = e.env["XDG_CONFIG_HOME"]
  return Path.join(nonEmpty(xdg) && Path.isAbsolute(xdg) ? xdg : Path.join(e.home, ".config"), "conclave")
}

/**
 * `--config-dir` when given, else the default for this process's environment.
 *
 * @since 0.1.0
 * @category resolution
 */
export const resolveSync = (override: string | undefined): string =>
  override ?? defaultFor({ platform: process.platform, home: Os.homedir(), env: process.env })
