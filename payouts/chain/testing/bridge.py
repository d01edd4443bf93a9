"""A local JSON-RPC bridge to an in-process eth-tester chain (test tools only, like the PSP stub).

`ChainBridge` owns an `EthereumTester` (py-evm backend) and serves standard Ethereum JSON-RPC on
127.0.0.1 over HTTP, so the code under test (and a worker in another process) reaches the chain
exactly as it would reach a node: through web3's `HTTPProvider`. The test drives the chain directly
through the same object (mine, snapshot, revert, mint), under the same lock as the RPC calls.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"  # the bridge listens here only
CONTRACT_SOURCE = Path(__file__).resolve().parent.parent / "contracts" / "usdc.vy"

SERVED_METHODS = frozenset(
    {
        "eth_chainId",
        "net_version",
        "eth_blockNumber",
        "eth_getBlockByNumber",
        "eth_getBlockByHash",
        "eth_getTransactionReceipt",
        "eth_getTransactionByHash",
        "eth_sendRawTransaction",
        "eth_getLogs",
        "eth_getBalance",
        "eth_getTransactionCount",
        "eth_call",
        "eth_estimateGas",
        "eth_gasPrice",
        "eth_maxPriorityFeePerGas",
        "eth_feeHistory",
        "eth_getCode",
    }
)


@lru_cache(maxsize=1)
def compiled_token() -> dict[str, Any]:
    """Compile the test token from its Vyper source once per process: {"abi": ..., "bytecode": ...}."""
    from vyper.compiler import compile_code

    out = compile_code(CONTRACT_SOURCE.read_text(), output_formats=["abi", "bytecode"])
    return {"abi": out["abi"], "bytecode": out["bytecode"]}


def _to_json(value: Any, key: str = "") -> Any:
    """Turn web3's Python values back into JSON-RPC's wire format (hex quantities and data)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if key == "logsBloom":
            return "0x" + value.to_bytes(256, "big").hex()
        return hex(value)
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, Mapping):
        return {k: _to_json(v, k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_json(v, key) for v in value]
    return value


class ChainBridge:
    """An eth-tester chain with a JSON-RPC endpoint at `url`; use as a context manager."""

    def __init__(self) -> None:
        from eth_tester import EthereumTester, PyEVMBackend
        from web3 import EthereumTesterProvider, Web3

        self.lock = threading.RLock()
        self.tester = EthereumTester(PyEVMBackend())
        self.w3 = Web3(EthereumTesterProvider(self.tester))
        self.requests: list[str] = []
        self.fail_sends = 0  # test hook: answer the next N eth_sendRawTransaction with a connection error
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- chain control for tests --------------------------------------------------------------

    @property
    def chain_id(self) -> int:
        return int(self.w3.eth.chain_id)

    @property
    def funder(self) -> str:
        return str(self.w3.eth.accounts[0])

    def mine(self, blocks: int = 1) -> int:
        with self.lock:
            self.tester.mine_blocks(blocks)
            return int(self.w3.eth.block_number)

    def head(self) -> int:
        with self.lock:
            return int(self.w3.eth.block_number)

    def snapshot(self) -> Any:
        with self.lock:
            return self.tester.take_snapshot()

    def revert(self, snapshot_id: Any) -> None:
        with self.lock:
            self.tester.revert_to_snapshot(snapshot_id)

    def set_automine(self, on: bool) -> None:
        with self.lock:
            if on:
                self.tester.enable_auto_mine_transactions()
            else:
                self.tester.disable_auto_mine_transactions()

    def deploy_token(self) -> Any:
        """Deploy the test USDC from the funder account; return the contract object (direct, not via RPC)."""
        artifact = compiled_token()
        with self.lock:
            factory = self.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
            tx = factory.constructor().transact({"from": self.funder})
            receipt = self.w3.eth.wait_for_transaction_receipt(tx)
            return self.w3.eth.contract(address=receipt["contractAddress"], abi=artifact["abi"])

    def transact(self, fn: Any, sender: str | None = None) -> Any:
        """Send a contract call from an unlocked tester account; return the receipt."""
        with self.lock:
            tx = fn.transact({"from": sender or self.funder})
            return self.w3.eth.get_transaction_receipt(tx)

    def send_eth(self, to: str, wei: int) -> None:
        from web3.types import Wei

        with self.lock:
            self.w3.eth.send_transaction({"from": self.funder, "to": to, "value": Wei(wei)})

    # --- JSON-RPC ------------------------------------------------------------------------------

    def handle(self, call: dict[str, Any]) -> dict[str, Any]:
        """Answer one JSON-RPC call."""
        call_id = call.get("id")
        method = call.get("method", "")
        params = call.get("params") or []
        self.requests.append(method)
        if method not in SERVED_METHODS:
            return {"jsonrpc": "2.0", "id": call_id, "error": {"code": -32601, "message": f"method {method} not found"}}
        try:
            with self.lock:
                if method == "eth_sendRawTransaction" and self.fail_sends > 0:
                    self.fail_sends -= 1
                    raise ConnectionAbortedError("bridge: dropped")
                if method == "eth_maxPriorityFeePerGas":
                    result: Any = 10**9
                elif method == "net_version":
                    result = str(self.chain_id)
                else:
                    response = self.w3.manager._make_request(method, params)
                    if "error" in response:
                        return {"jsonrpc": "2.0", "id": call_id, "error": response["error"]}
                    result = response.get("result")
        except ConnectionAbortedError:
            raise
        except Exception as exc:  # the node's refusal, e.g. a nonce already used
            return {
                "jsonrpc": "2.0",
                "id": call_id,
                "error": {"code": -32000, "message": f"{type(exc).__name__}: {exc}"},
            }
        return {"jsonrpc": "2.0", "id": call_id, "result": _to_json(result)}

    def __enter__(self) -> ChainBridge:
        bridge = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    payload = json.loads(body)
                    if isinstance(payload, list):
                        answer: Any = [bridge.handle(c) for c in payload]
                    else:
                        answer = bridge.handle(payload)
                except ConnectionAbortedError:
                    self.close_connection = True
                    return  # no answer at all: the client sees a dropped connection
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://{HOST}:{self._server.server_port}"

    def __exit__(self, *exc: Any) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
