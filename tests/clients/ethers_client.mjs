// ethers 6 against a running node, as a dapp would use it. Usage:
//   node ethers_client.mjs HTTP_URL CONTRACT_JSON   (CONTRACT_JSON: {abi, bytecode} of TestToken)
// Prints one JSON line per step ({"step", "detail"}); exits 1 at the first failure.
import { readFileSync } from "node:fs";
import {
  ContractFactory, JsonRpcProvider, Wallet, WebSocketProvider, parseEther, toBeHex, zeroPadValue,
} from "ethers";
import { check, report, sendUntilSeen, within } from "./steps.mjs";

const [url, contractFile] = process.argv.slice(2);
const { abi, bytecode } = JSON.parse(readFileSync(contractFile, "utf8"));
// The devnet's prefunded accounts 0 and 2 (the standard development mnemonic).
const KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const EMPTY_KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";
const OTHER = "0x000000000000000000000000000000000000dEaD";

// cacheTimeout -1: ethers shares identical requests made within 250 ms, so a send right after
// a deploy the node answered that fast would reuse the deploy's pending nonce.
const provider = new JsonRpcProvider(url, undefined, { pollingInterval: 100, cacheTimeout: -1 });
const wallet = new Wallet(KEY, provider);

async function transfers() {
  const accessList = [{ address: OTHER, storageKeys: [zeroPadValue("0x01", 32), zeroPadValue("0x02", 32)] }];
  for (const type of [0, 1, 2]) {
    const request = { type, to: OTHER, value: 1000n };
    if (type > 0) request.accessList = accessList;
    const gas = await provider.estimateGas({ ...request, from: wallet.address });
    check(gas === (type === 0 ? 21000n : 27200n), `type ${type}: estimateGas ${gas}`);
    const receipt = await (await wallet.sendTransaction(request)).wait();
    check(receipt.status === 1 && receipt.type === type, `type ${type}: receipt ${receipt.status}`);
    check(receipt.gasUsed === gas, `type ${type}: gasUsed ${receipt.gasUsed} != estimate ${gas}`);
    report(`transfer type ${type}`, { gasUsed: Number(receipt.gasUsed), block: receipt.blockNumber });
  }
}

async function deploy() {
  const factory = new ContractFactory(abi, bytecode, wallet);
  const token = await factory.deploy(parseEther("1000000"));
  await token.waitForDeployment();
  const address = await token.getAddress();
  check((await provider.getCode(address)).length > 2, "no code at the token");
  report("deploy", { address });
  return token;
}

async function eventFilters(token) {
  // contract.on uses eth_newFilter + eth_getFilterChanges; queryFilter uses eth_getLogs.
  const seen = new Promise((resolve) => token.on("Transfer", (from, to, value, payload) => {
    if (to === OTHER) resolve([from, value, payload.log.transactionHash]);
  }));
  const sent = [];
  const [[from, value, hash], sends] = await sendUntilSeen(seen, async () => {
    const tx = await token.transfer(OTHER, 5n);
    sent.push(tx.hash);
    await tx.wait();
  }, "Transfer event");
  await token.off("Transfer");
  check(from === wallet.address && value === 5n && sent.includes(hash), `event: ${from} ${value}`);
  const logs = await token.queryFilter(token.filters.Transfer(null, OTHER));
  check(logs.length === sends && logs.every((log, i) => log.transactionHash === sent[i]),
    `queryFilter: ${logs.length} logs for ${sends} transfers`);
  report("event filters", { on: "Transfer", transfers: sends, queryFilter: logs.length });
}

async function pending() {
  // provider.on('pending') installs eth_newPendingTransactionFilter and polls it.
  const sent = new Set();
  const seen = new Promise((resolve) => {
    provider.on("pending", (hash) => { if (sent.has(hash)) resolve(hash); });
  });
  const [hash, sends] = await sendUntilSeen(seen, async () => {
    const tx = await wallet.sendTransaction({ to: OTHER, value: 1n });
    sent.add(tx.hash);
  }, "pending notification");
  await provider.off("pending");
  await (await provider.getTransaction(hash)).wait();
  report("provider.on('pending')", { hash, sends });
}

async function websocketBlocks() {
  const ws = new WebSocketProvider(url.replace(/^http/, "ws"));
  const blocks = [];
  await within(10000, new Promise((resolve) => {
    ws.on("block", (number) => { blocks.push(number); if (blocks.length === 2) resolve(); });
  }), "WebSocket blocks");
  check(blocks[1] === blocks[0] + 1, `blocks ${blocks}`);
  await ws.destroy();
  report("WebSocket block subscription", { blocks });
}

async function proofAndOverrides(token) {
  const address = await token.getAddress();
  const proof = await provider.send("eth_getProof", [address, [toBeHex(0, 32)], "latest"]);
  check(proof.accountProof.length > 0 && proof.storageProof[0].proof.length > 0, "empty proof");
  check(BigInt(proof.storageProof[0].value) === parseEther("1000000"), "totalSupply slot");
  const call = { to: address, data: token.interface.encodeFunctionData("totalSupply") };
  const overridden = await provider.send("eth_call", [call, "latest", {
    [address]: { stateDiff: { [toBeHex(0, 32)]: toBeHex(42, 32) } },
  }]);
  check(BigInt(overridden) === 42n, `override: ${overridden}`);
  const list = await provider.send("eth_createAccessList", [{
    from: wallet.address, to: address, data: token.interface.encodeFunctionData("transfer", [OTHER, 1n]),
  }, "latest"]);
  check(list.accessList.length === 1 && list.accessList[0].storageKeys.length === 2, "access list");
  const receipt = await (await token.transfer(OTHER, 1n, { type: 1, accessList: list.accessList })).wait();
  check(receipt.status === 1 && receipt.type === 1, "type-1 call with the created access list");
  report("getProof, stateOverride, createAccessList", {
    proofNodes: proof.accountProof.length, overridden: 42, accessListKeys: 2,
  });
}

async function revertReason(token) {
  const empty = new Wallet(EMPTY_KEY, provider);
  try {
    await token.connect(empty).transfer(OTHER, 1n);
  } catch (error) {
    check(error.code === "CALL_EXCEPTION" && error.reason === "insufficient balance",
      `revert: ${error.code} ${error.reason}`);
    report("revert reason", { reason: error.reason });
    return;
  }
  throw new Error("the transfer did not revert");
}

async function refusals() {
  // A refused transaction carries the spec catalogue's code (1, 809) and geth's message,
  // which ethers reads. Gas and fees are given: ethers sends without estimating first.
  const fees = { type: 2, gasLimit: 21000n, maxFeePerGas: 10n ** 10n, maxPriorityFeePerGas: 10n ** 9n };
  const refused = (promise) => promise.then(() => { throw new Error("accepted"); }, (error) => error);
  const stale = await refused(wallet.sendTransaction({ to: OTHER, value: 1n, nonce: 0, ...fees }));
  check(stale.code === "NONCE_EXPIRED", `stale nonce: ${stale.code} ${stale.message}`);
  const pauper = Wallet.createRandom(provider);
  const poor = await refused(pauper.sendTransaction({ to: OTHER, value: 1n, nonce: 0, ...fees }));
  check(poor.code === "INSUFFICIENT_FUNDS", `no funds: ${poor.code} ${poor.message}`);
  report("refused transactions", { stale: stale.code, poor: poor.code });
}

try {
  check((await provider.getNetwork()).chainId === 7331n, "chain id");
  await transfers();
  const token = await deploy();
  await eventFilters(token);
  await pending();
  await websocketBlocks();
  await proofAndOverrides(token);
  await revertReason(token);
  await refusals();
  provider.destroy();
  process.exit(0);
} catch (error) {
  console.log(JSON.stringify({ step: "failed", detail: String(error.stack || error) }));
  process.exit(1);
}
