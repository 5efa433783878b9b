// Builds the embeddable widget: console/widget/src -> console/widget/dist/warmline.js, one minified IIFE with
// socket.io-client bundled in. Run by `npm run build:widget` in console/; the output is committed (the relay serves
// it as it is, so running Warmline needs no build step) and tests/test_widget_bundle.py checks it is up to date.
import { build } from "esbuild";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const version = JSON.parse(readFileSync(join(here, "..", "package.json"), "utf8")).version;
const outfile = process.argv[2] || join(here, "dist", "warmline.js");

await build({
  entryPoints: [join(here, "src", "index.js")],
  outfile,
  bundle: true,
  minify: true,
  format: "iife",
  target: "es2020",
  loader: { ".css": "text" },
  legalComments: "none",
  banner: { js: `/* Warmline widget ${version} (socket.io-client bundled, MIT) */` },
  define: { "process.env.NODE_ENV": '"production"' },
  logLevel: "warning",
});
