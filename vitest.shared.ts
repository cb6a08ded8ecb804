import * as path from "node:path"
import { fileURLToPath } from "node:url"
import type { ViteUserConfig } from "vitest/config"

const root = path.dirname(fileURLToPath(import.meta.url))
const alias = (name: string, dir: string) => [
  { find: new RegExp(`^${name}$`), replacement: path.join(root, "packages", dir, "src", "index.ts") },
  // `internal/*` is not exported (package.json), so tests cannot reach it through the name either
  { find: new RegExp(`^${name}/(?!internal/)(.*)$`), replacement: path.join(root, "packages", dir, "src", "$1.ts") }
]

const config: ViteUserConfig = {
  esbuild: { target: "es2022" },
  resolve: {
    alias: [
      ...alias("@conclave/protocol", "protocol"),
      ...alias("@conclave/client", "client"),
      ...alias("@conclave/server", "server"),
      ...alias("@conclave/bridge", "bridge"),
      ...alias("@conclave/testkit", "testkit")
    ]
  },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    fakeTimers: { toFake: undefined }
  }
}

export default config
