// Renders an AsyncAPI document for people, with the AsyncAPI generator and its Markdown template:
//   node render.cjs DOCUMENT.yaml OUTPUT_FOLDER   (writes OUTPUT_FOLDER/asyncapi.md)
// codegen/render.py runs it for `make generate`. The template is the installed package
// (`install: false`): nothing is fetched.
"use strict";

const path = require("node:path");
const Generator = require("@asyncapi/generator");

async function main(document, output) {
  const template = path.dirname(require.resolve("@asyncapi/markdown-template/package.json"));
  const generator = new Generator(template, path.resolve(output), {
    forceWrite: true,
    install: false,
    templateParams: { outFilename: "asyncapi.md", toc: "true" },
  });
  await generator.generateFromFile(path.resolve(document));
}

const [document, output] = process.argv.slice(2);
if (document === undefined || output === undefined) {
  console.error("usage: node render.cjs DOCUMENT.yaml OUTPUT_FOLDER");
  process.exit(2);
}
main(document, output).catch((error) => {
  console.error(error);
  process.exit(1);
});
