#!/usr/bin/env node
// The `cronwheel` binary: runs the compiled CLI (build with `npm run build`; `npm install` builds too).
import "../dist/src/cli/main.js";
