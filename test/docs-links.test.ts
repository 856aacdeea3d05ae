/**
 * The docs stand on their own: every link in README.md and docs/*.md points at a file of this
 * repository that exists (and, with an anchor, at a heading of that file), never at a web page or
 * at the design files beside the repository that a clone does not have.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const PAGES = ["README.md", ...fs.readdirSync(path.join(ROOT, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)];

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function anchorOf(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\- _]/gu, "")
    .replace(/ /g, "-");
}

function problems(page: string): string[] {
  const text = fs.readFileSync(path.join(ROOT, page), "utf8");
  const found: string[] = [];
  if (/\.\.\/shared\b|shared\/design/.test(text)) found.push(`${page}: refers to the design files outside the repository`);
  for (const [, link] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(link!)) {
      found.push(`${page}: links outside the repository: ${link}`);
      continue;
    }
    const [target, anchor] = link!.split("#");
    const file = target ? path.normalize(path.join(path.dirname(page), target)) : page;
    if (file.startsWith("..")) found.push(`${page}: links outside the repository: ${link}`);
    else if (!fs.existsSync(path.join(ROOT, file))) found.push(`${page}: links to a missing file: ${link}`);
    else if (anchor && file.endsWith(".md")) {
      const headings = [...fs.readFileSync(path.join(ROOT, file), "utf8").matchAll(/^#+ (.*)$/gm)].map((h) => anchorOf(h[1]!));
      if (!headings.includes(anchor)) found.push(`${page}: links to a missing heading: ${link}`);
    }
  }
  return found;
}

describe("docs", () => {
  it("link only to files and headings inside the repository", () => {
    expect(PAGES.length).toBeGreaterThan(5);
    expect(PAGES.flatMap(problems)).toEqual([]);
  });
});
