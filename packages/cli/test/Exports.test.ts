// What the published packages let others import: every module of `dist/` except `internal/*`
// (node's own resolution of the `exports` maps, on the built packages).
import { assert, describe, it } from "@effect/vitest"
import * as Fs from "node:fs"
import { createRequire } from "node:module"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const packages = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "../..")
const published = ["protocol", "client", "server", "bridge", "cli"] as const

/** Why `specifier` does not resolve from inside package `name` (a self-reference, as by name), if it does not. */
const resolveError = (name: string, specifier: string): string | undefined => {
  try {
    createRequire(Path.join(packages, name, "package.json")).resolve(specifier)
    return undefined
  } catch (e) {
    return (e as { readonly code?: string }).code ?? String(e)
  }
}

describe("package exports", () => {
  for (const name of published) {
    const manifest = JSON.parse(Fs.readFileSync(Path.join(packages, name, "package.json"), "utf8")) as {
      readonly name: string
      readonly exports: Record<string, unknown>
    }
    it(`${manifest.name} exports its modules but not internal/*`, () => {
      const keys = Object.keys(manifest.exports)
      if (keys.includes("./*")) {
        // the block must come before the wildcard it carves out of
        assert.isTrue(keys.indexOf("./internal/*") >= 0, `${manifest.name}: "./internal/*": null is missing`)
        assert.isBelow(keys.indexOf("./internal/*"), keys.indexOf("./*"))
        assert.isNull(manifest.exports["./internal/*"])
      }
      const internal = Path.join(packages, name, "dist", "internal")
      const hidden = Fs.existsSync(internal) ? Fs.readdirSync(internal).filter((f) => f.endsWith(".js")) : []
      for (const file of hidden) {
        const specifier = `${manifest.name}/internal/${file.slice(0, -3)}`
        assert.strictEqual(resolveError(name, specifier), "ERR_PACKAGE_PATH_NOT_EXPORTED", specifier)
      }
      assert.isUndefined(resolveError(name, manifest.name))
    })
  }

  it("the internal modules that exist are the ones checked", () => {
    assert.isTrue(Fs.existsSync(Path.join(packages, "protocol", "dist", "internal", "schemaDecoder.js")))
    assert.isTrue(Fs.existsSync(Path.join(packages, "server", "dist", "internal", "wire.js")))
    assert.isUndefined(resolveError("server", "@conclave/server/ServerLive"))
  })
})
