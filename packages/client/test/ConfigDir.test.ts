import { ConfigDir } from "@conclave/client"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Os from "node:os"
import * as Path from "node:path"

describe("ConfigDir", () => {
  it.effect("--config-dir wins", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* ConfigDir.resolve(Option.some("/tmp/x")), "/tmp/x")
    }))

  it.effect("the default ends in conclave under the home or XDG dir", () =>
    Effect.gen(function*() {
      const dir = yield* ConfigDir.resolve(Option.none())
      assert.strictEqual(Path.basename(dir), "conclave")
      const xdg = process.env["XDG_CONFIG_HOME"]
      if (process.platform === "linux") {
        assert.strictEqual(
          dir,
          Path.join(
            xdg !== undefined && xdg !== "" && Path.isAbsolute(xdg) ? xdg : Path.join(Os.homedir(), ".config"),
            "conclave"
          )
        )
      }
    }))

  it("per-OS defaults", () => {
    const env = (e: Record<string, string>) => e
    assert.strictEqual(
      ConfigDir.defaultFor({ platform: "linux", home: "/home/a", env: env({ XDG_CONFIG_HOME: "/xdg" }) }),
      "/xdg/conclave"
    )
    assert.strictEqual(
      ConfigDir.defaultFor({ platform: "linux", home: "/home/a", env: {} }),
      "/home/a/.config/conclave"
    )
    assert.strictEqual(
      ConfigDir.defaultFor({ platform: "linux", home: "/home/a", env: env({ XDG_CONFIG_HOME: "" }) }),
      "/home/a/.config/conclave"
    )
    assert.strictEqual(
      ConfigDir.defaultFor({ platform: "linux", home: "/home/a", env: env({ XDG_CONFIG_HOME: "relative" }) }),
      "/home/a/.config/conclave"
    )
    assert.strictEqual(
      ConfigDir.defaultFor({ platform: "darwin", home: "/Users/a", env: {} }),
      "/Users/a/Library/Application Support/conclave"
    )
    assert.strictEqual(
      ConfigDir.defaultFor({
        platform: "win32",
        home: "C:\\Users\\a",
        env: env({ APPDATA: "C:\\Users\\a\\AppData\\Roaming" })
      }),
      "C:\\Users\\a\\AppData\\Roaming\\conclave"
    )
  })
})
