// Fails when the compiled sources of any package contain an import cycle.
import madge from "madge"

const result = await madge([
  "packages/protocol/dist",
  "packages/client/dist",
  "packages/server/dist",
  "packages/bridge/dist",
  "packages/cli/dist",
  "packages/testkit/dist",
  "packages/reliability/dist"
], {
  fileExtensions: ["js"],
  excludeRegExp: [/node_modules/]
})
const cycles = result.circular()
if (cycles.length > 0) {
  console.error("import cycles found:")
  for (const cycle of cycles) console.error("  " + cycle.join(" -> "))
  process.exit(1)
}
console.log("no import cycles")
