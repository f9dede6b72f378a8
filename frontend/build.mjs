// Bundle src/index.ts into ONE ES module for TensorBoard: ../tb_plugin/static/index.js.
// Deterministic: same sources + lockfile -> byte-identical output (no timestamps, no absolute
// paths, no source maps). `node build.mjs --outfile <path>` writes elsewhere (used by tests).
import * as esbuild from "esbuild";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const outIdx = args.indexOf("--outfile");
const outfile = outIdx >= 0 ? resolve(args[outIdx + 1]) : resolve(here, "../tb_plugin/static/index.js");

const result = await esbuild.build({
  absWorkingDir: here,
  entryPoints: ["src/index.ts"],
  outfile,
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2020",
  minify: true,
  sourcemap: false,
  charset: "utf8",
  legalComments: "none",
  banner: { js: "/*! metricreg Health tab. Bundles uPlot (MIT License, (c) Leon Sorokin). Source: frontend/ */" },
  loader: { ".css": "text" },
  metafile: true,
  logLevel: "warning",
});

const bytes = Object.values(result.metafile.outputs)[0]?.bytes ?? 0;
console.log(`built ${outfile} (${bytes} bytes)`);
