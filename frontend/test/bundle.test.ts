import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";

const frontend = resolve(__dirname, "..");

function build(outfile: string): Buffer {
  execFileSync(process.execPath, ["build.mjs", "--outfile", outfile], { cwd: frontend, stdio: "pipe" });
  return readFileSync(outfile);
}

describe("bundle", () => {
  const dir = mkdtempSync(join(tmpdir(), "metricreg-health-"));
  const a = build(join(dir, "a", "index.js"));
  const b = build(join(dir, "b", "index.js"));

  it("is deterministic and free of absolute paths", () => {
    expect(a.equals(b)).toBe(true);
    const text = a.toString("utf8");
    expect(text).not.toContain(frontend);
    expect(text).not.toContain(dir);
    expect(text).not.toMatch(/sourceMappingURL/);
  });

  it("is one ES module exporting render() that does not touch the DOM on import", async () => {
    const mod = (await import(pathToFileURL(join(dir, "a", "index.js")).href)) as Record<string, unknown>;
    expect(Object.keys(mod)).toEqual(["render"]);
    expect(typeof mod.render).toBe("function");
    expect(a.toString("utf8")).not.toMatch(/\brequire\(/);
  });

  it("bundles uPlot's CSS as text", () => {
    expect(a.toString("utf8")).toContain(".uplot");
  });
});

describe("sources", () => {
  it("never build HTML from strings (innerHTML & co.)", () => {
    const files: string[] = [];
    const walk = (d: string): void => {
      for (const f of readdirSync(d)) {
        const p = join(d, f);
        if (statSync(p).isDirectory()) walk(p);
        else if (p.endsWith(".ts")) files.push(p);
      }
    };
    walk(join(frontend, "src"));
    expect(files.length).toBeGreaterThan(10);
    for (const f of files) {
      expect(readFileSync(f, "utf8"), f).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|DOMParser/);
    }
  });
});
