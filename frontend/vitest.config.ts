import { defineConfig } from "vitest/config";

// Unit tests run in Node; DOM tests opt into jsdom with a `// @vitest-environment jsdom` comment.
export default defineConfig({
  test: {
    environment: "node",
    include: ["test/**/*.test.ts"],
  },
});
