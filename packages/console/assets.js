// Where the console's built assets are (`npm install` builds them with Vite into dist/): the
// directory `conclave serve` serves at /console/ (D-51). The server takes this path as configuration.
import { fileURLToPath } from "node:url"

/** The built console: `index.html` and `assets/`. */
export const consoleDir = fileURLToPath(new URL("./dist/", import.meta.url))
