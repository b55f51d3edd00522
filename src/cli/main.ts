#!/usr/bin/env node
/** `kok`: the kube-on-kube command. program.ts declares the commands; each lives in its own module. */
import { runKok } from "./program";

void runKok(process.argv.slice(2)).then((code) => process.exit(code));
