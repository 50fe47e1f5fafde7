// Compiles contracts/BatchInbox.sol with the pinned npm `solc` (see package.json) and writes
// contracts/artifacts/BatchInbox.json: {contractName, abi, bytecode, solcVersion, evmVersion, sourceHash}.
// `node contracts/build.js --stdout` prints the artifact instead of writing it (used by the
// test that checks the committed artifact is current).
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const CONTRACT = "BatchInbox";
// L1s we target run Cancun or later; solc 0.8.3x defaults to a newer EVM than py-evm's tester.
const EVM_VERSION = "cancun";

const sourcePath = path.join(__dirname, `${CONTRACT}.sol`);
const source = fs.readFileSync(sourcePath, "utf8");
const input = {
  language: "Solidity",
  sources: { [`${CONTRACT}.sol`]: { content: source } },
  settings: {
    evmVersion: EVM_VERSION,
    optimizer: { enabled: true, runs: 200 },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
  },
};

const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) process.stderr.write(e.formattedMessage + "\n");
if (errors.length > 0) process.exit(1);

const compiled = output.contracts[`${CONTRACT}.sol`][CONTRACT];
const artifact = {
  contractName: CONTRACT,
  abi: compiled.abi,
  bytecode: "0x" + compiled.evm.bytecode.object,
  solcVersion: solc.version(),
  evmVersion: EVM_VERSION,
  sourceHash: "sha256:" + crypto.createHash("sha256").update(source, "utf8").digest("hex"),
};
const text = JSON.stringify(artifact, null, 2) + "\n";

if (process.argv.includes("--stdout")) {
  process.stdout.write(text);
} else {
  fs.writeFileSync(path.join(__dirname, "artifacts", `${CONTRACT}.json`), text);
}
