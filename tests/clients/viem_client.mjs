// viem 2 against a running node, as a dapp would use it. Usage:
//   node viem_client.mjs HTTP_URL CONTRACT_JSON   (CONTRACT_JSON: {abi, bytecode} of TestToken)
// Prints one JSON line per step ({"step", "detail"}); exits 1 at the first failure.
import { readFileSync } from "node:fs";
import {
  BaseError, ContractFunctionRevertedError, InsufficientFundsError, NonceTooLowError,
  createPublicClient, createWalletClient, defineChain, encodeFunctionData, http, pad, parseEther,
  toHex, webSocket,
} from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { check, report, sendUntilSeen, within } from "./steps.mjs";

const [url, contractFile] = process.argv.slice(2);
const { abi, bytecode } = JSON.parse(readFileSync(contractFile, "utf8"));
const chain = defineChain({
  id: 7331, name: "l2node devnet", nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
  rpcUrls: { default: { http: [url], webSocket: [url.replace(/^http/, "ws")] } },
});
// The devnet's prefunded accounts 1 and 3 (the standard development mnemonic).
const account = privateKeyToAccount("0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d");
const empty = privateKeyToAccount("0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6");
const OTHER = "0x000000000000000000000000000000000000bEEF";

const client = createPublicClient({ chain, transport: http(url), pollingInterval: 100 });
const wallet = createWalletClient({ account, chain, transport: http(url) });

async function transfers() {
  const accessList = [{ address: OTHER, storageKeys: [pad("0x01"), pad("0x02")] }];
  for (const type of ["legacy", "eip2930", "eip1559"]) {
    const request = { to: OTHER, value: 1000n, type };
    if (type !== "legacy") request.accessList = accessList;
    const gas = await client.estimateGas({ ...request, account });
    check(gas === (type === "legacy" ? 21000n : 27200n), `${type}: estimateGas ${gas}`);
    const hash = await wallet.sendTransaction(request);
    const receipt = await client.waitForTransactionReceipt({ hash, pollingInterval: 100 });
    check(receipt.status === "success" && receipt.type === type, `${type}: ${receipt.status} ${receipt.type}`);
    check(receipt.gasUsed === gas, `${type}: gasUsed ${receipt.gasUsed} != estimate ${gas}`);
    const tx = await client.getTransaction({ hash });
    check(type === "legacy" || tx.accessList.length === 1, `${type}: access list not echoed`);
    report(`transfer type ${type}`, { gasUsed: receipt.gasUsed, block: receipt.blockNumber });
  }
}

async function deploy() {
  const hash = await wallet.deployContract({ abi, bytecode, args: [parseEther("1000000")] });
  const receipt = await client.waitForTransactionReceipt({ hash, pollingInterval: 100 });
  check(receipt.status === "success" && receipt.contractAddress, "deploy failed");
  report("deploy", { address: receipt.contractAddress });
  return [receipt.contractAddress, receipt.blockNumber];
}

async function eventFilters(token, deployBlock) {
  // createContractEventFilter + getFilterChanges, and watchContractEvent (filters over HTTP).
  const filter = await client.createContractEventFilter({
    address: token, abi, eventName: "Transfer", fromBlock: deployBlock,
  });
  const watched = new Promise((resolve) => {
    const unwatch = client.watchContractEvent({
      address: token, abi, eventName: "Transfer", args: { to: OTHER },
      onLogs: (logs) => { unwatch(); resolve(logs); },
    });
  });
  const sent = [];
  const [logs, sends] = await sendUntilSeen(watched, async () => {
    const hash = await wallet.writeContract({ address: token, abi, functionName: "transfer", args: [OTHER, 5n] });
    sent.push(hash);
    await client.waitForTransactionReceipt({ hash, pollingInterval: 100 });
  }, "watchContractEvent");
  check(logs[0].args.value === 5n && sent.includes(logs[0].transactionHash), "watched log");
  // The explicit filter was made before the first transfer: it reports every one of them.
  const changes = await client.getFilterChanges({ filter });
  check(changes.length === sends && changes.every((log, i) => log.transactionHash === sent[i]),
    `filter changes: ${changes.length} for ${sends} transfers`);
  const all = await client.getFilterLogs({ filter });
  check(all.length === sends + 1 && all[0].args.from === "0x0000000000000000000000000000000000000000",
    `filter logs: ${all.length}`);  // the mint in the constructor, then the transfers
  await client.uninstallFilter({ filter });
  report("event filters", { transfers: sends, watched: logs.length, changes: changes.length });
}

async function pendingTransactions() {
  const sent = new Set();
  const seen = new Promise((resolve) => {
    const unwatch = client.watchPendingTransactions({
      onTransactions: (hashes) => {
        const ours = hashes.find((hash) => sent.has(hash));
        if (ours) { unwatch(); resolve(ours); }
      },
    });
  });
  const [hash, sends] = await sendUntilSeen(seen, async () => {
    sent.add(await wallet.sendTransaction({ to: OTHER, value: 1n }));
  }, "watchPendingTransactions");
  await client.waitForTransactionReceipt({ hash, pollingInterval: 100 });
  report("watchPendingTransactions", { hash, sends });
}

async function websocketBlocks() {
  const ws = createPublicClient({ chain, transport: webSocket(url.replace(/^http/, "ws")) });
  const blocks = [];
  await within(10000, new Promise((resolve) => {
    const unwatch = ws.watchBlocks({
      onBlock: (block) => { blocks.push(block.number); if (blocks.length === 2) { unwatch(); resolve(); } },
    });
  }), "watchBlocks");
  check(blocks[1] === blocks[0] + 1n, `blocks ${blocks}`);
  await ws.transport.getRpcClient().then((rpc) => rpc.close());
  report("watchBlocks over WebSocket", { blocks });
}

async function proofAndOverrides(token) {
  const proof = await client.getProof({ address: token, storageKeys: [pad("0x0")] });
  check(proof.accountProof.length > 0 && proof.storageProof[0].value === parseEther("1000000"), "proof");
  const data = encodeFunctionData({ abi, functionName: "totalSupply" });
  const result = await client.call({
    to: token, data, stateOverride: [{ address: token, stateDiff: [{ slot: pad("0x0"), value: pad(toHex(42)) }] }],
  });
  check(BigInt(result.data) === 42n, `stateOverride: ${result.data}`);
  const transfer = encodeFunctionData({ abi, functionName: "transfer", args: [OTHER, 1n] });
  const { accessList, gasUsed } = await client.createAccessList({ account, to: token, data: transfer });
  check(accessList.length === 1 && accessList[0].storageKeys.length === 2, "createAccessList");
  const hash = await wallet.sendTransaction({ to: token, data: transfer, accessList, gas: gasUsed });
  const receipt = await client.waitForTransactionReceipt({ hash, pollingInterval: 100 });
  check(receipt.status === "success" && receipt.gasUsed === gasUsed, "transfer with created access list");
  report("getProof, stateOverride, createAccessList", { proofNodes: proof.accountProof.length, gasUsed });
}

async function revertReason(token) {
  try {
    await client.simulateContract({ account: empty, address: token, abi, functionName: "transfer", args: [OTHER, 1n] });
  } catch (error) {
    const reverted = error instanceof BaseError && error.walk((e) => e instanceof ContractFunctionRevertedError);
    check(reverted && reverted.reason === "insufficient balance", `revert: ${error.shortMessage}`);
    report("revert reason", { reason: reverted.reason });
    return;
  }
  throw new Error("the transfer did not revert");
}

async function simulateBlocks(token) {
  // eth_simulateV1: two blocks, the second on the state the first left; an unfunded account
  // funded by a state override; ETH transfers traced as logs; a revert reason decoded.
  const transfer = (to, value) => ({ abi, to: token, functionName: "transfer", args: [to, value] });
  const balanceBefore = await client.getBalance({ address: empty.address });
  const [first, second] = await client.simulateBlocks({
    traceTransfers: true,
    blocks: [
      { stateOverrides: [{ address: empty.address, balance: parseEther("1") }],
        calls: [{ account: empty, to: OTHER, value: 1000n },
                { account, ...transfer(empty.address, 7n) }] },
      { blockOverrides: { time: BigInt(Math.floor(Date.now() / 1000) + 3600) },
        calls: [{ account: empty, ...transfer(OTHER, 7n) }, { account: empty, ...transfer(OTHER, 1n) }] },
    ],
  });
  check(first.calls.every((call) => call.status === "success") && first.calls[1].result === true,
    `first block: ${first.calls.map((call) => call.status)}`);
  const [traced] = first.calls[0].logs;
  check(traced.address === "0xeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee" && BigInt(traced.data) === 1000n,
    "traced ETH transfer");
  check(second.number === first.number + 1n && second.parentHash === first.hash, "chained blocks");
  const [spent, refused] = second.calls;
  check(spent.status === "success" && refused.status === "failure", "second block statuses");
  const reverted = refused.error.walk((e) => e instanceof ContractFunctionRevertedError);
  check(reverted && reverted.reason === "insufficient balance", `simulated revert: ${refused.error.shortMessage}`);
  check(await client.getBalance({ address: empty.address }) === balanceBefore, "simulation changed the chain");
  report("simulateBlocks", { blocks: [first.number, second.number], gasUsed: second.gasUsed });
}

async function refusals() {
  // A refused transaction carries the spec catalogue's code (1, 809) and geth's message,
  // which viem reads.
  const fees = { gas: 21000n, maxFeePerGas: 10n ** 10n, maxPriorityFeePerGas: 10n ** 9n };
  const refused = (promise) => promise.then(() => { throw new Error("accepted"); }, (error) => error);
  const stale = await refused(wallet.sendTransaction({ to: OTHER, value: 1n, nonce: 0, ...fees }));
  check(stale.walk((e) => e instanceof NonceTooLowError), `stale nonce: ${stale.shortMessage}`);
  const pauper = createWalletClient({ account: privateKeyToAccount(generatePrivateKey()), chain, transport: http(url) });
  const poor = await refused(pauper.sendTransaction({ to: OTHER, value: 1n, nonce: 0, ...fees }));
  check(poor.walk((e) => e instanceof InsufficientFundsError), `no funds: ${poor.shortMessage}`);
  report("refused transactions", { stale: stale.name, poor: poor.name });
}

try {
  check((await client.getChainId()) === 7331, "chain id");
  await transfers();
  const [token, deployBlock] = await deploy();
  await eventFilters(token, deployBlock);
  await pendingTransactions();
  await websocketBlocks();
  await proofAndOverrides(token);
  await revertReason(token);
  await simulateBlocks(token);
  await refusals();
  process.exit(0);
} catch (error) {
  console.log(JSON.stringify({ step: "failed", detail: String(error.stack || error) }));
  process.exit(1);
}
