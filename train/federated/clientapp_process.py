"""A SuperNode's ClientApp in one long-lived process, so a device loads TensorFlow, its data and its model once.

With its default `--isolation subprocess` a SuperNode's SuperExec starts a fresh
`flwr-clientapp` process for every message (flwr 1.42's `flwr-clientapp` takes a
one-task token and exits after that task): about 2 s of Python and Flower imports
each, and for a fit TensorFlow's import (about 9 s), the data set and the model on
top. SecAgg+ sends four messages a round where a plain round sends one. A SuperNode
started with `--isolation process` starts nothing and leaves its tasks on its
Runtime API for another process; this one takes them in a loop (what SuperExec and
`flwr-clientapp` do for a ClientApp task: acquire it, pull its message and context,
run the ClientApp, push the reply and the context back), with mcuforge's ClientApp
and mods (deployment.client) kept loaded between tasks. Every message still goes
through the same ClientApp: the SecAgg+ protocol and its per-round state (in the
context the SuperNode keeps) are unchanged.

    python -m mcuforge.train.federated.clientapp_process --runtime-api-address 127.0.0.1:9094 --insecure
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

POLL_SECONDS = 0.1  # how long to wait before asking the SuperNode again when it has no task (one HTTP request each)


def _runtime_client(address: str, certificates: bytes | None, interceptors: list):
    from flwr.supercore.retry import make_simple_http_retry_invoker
    from flwr.supercore.runtime import RuntimeHttpClient

    return RuntimeHttpClient.from_server_address(
        server_address=address, insecure=certificates is None, root_certificates=certificates,
        interceptors=interceptors, retry_invoker=make_simple_http_retry_invoker(),
    )


def _heartbeat(runtime):
    """Flower's task heartbeat, without its SIGINT when the SuperNode no longer knows the task (that would end this process)."""
    import httpx
    from flwr.proto.runtime_pb2 import SendTaskHeartbeatRequest  # pylint: disable=E0611
    from flwr.supercore.heartbeat import HeartbeatSender

    def beat() -> bool:
        try:
            runtime.SendTaskHeartbeat(SendTaskHeartbeatRequest())
        except httpx.TransportError:
            return False
        return True

    return HeartbeatSender(beat)


def run_task(address: str, certificates: bytes | None, token: str, app) -> str:
    """Run one acquired ClientApp task with `app`; its message type, for the log.

    A ClientApp that raises answers with an error reply, as `flwr-clientapp` does.
    """
    from flwr.app import Message
    from flwr.app.error import Error
    from flwr.common.constant import ErrorCode, SubStatus
    from flwr.supercore.interceptors import RuntimeTokenHttpInterceptor, RuntimeVersionHttpInterceptor
    from flwr.supernode.runtime.run_clientapp import pull_task_input, push_message, push_task_output

    runtime = _runtime_client(address, certificates, [
        RuntimeVersionHttpInterceptor(component_name="flwr-clientapp"), RuntimeTokenHttpInterceptor(token),
    ])
    heartbeat = _heartbeat(runtime)
    heartbeat.start()
    message = context = reply = None
    status, details = SubStatus.FAILED, "ClientApp task failed"
    try:
        message, context, _, _ = pull_task_input(runtime)
        reply = app(message=message, context=context)
        status, details = SubStatus.COMPLETED, ""
    except Exception as error:  # noqa: BLE001  (the server gets the failure as the reply, like flwr-clientapp's)
        details = f"{type(error)}:<'{error}'>"
        traceback.print_exc()
        if message is not None:
            reply = Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=details), reply_to=message)
    finally:
        try:
            if reply is not None and context is not None:
                push_message(runtime, reply, context)
        finally:
            push_task_output(runtime, context, status, details)
            heartbeat.stop()
            runtime.close()
    return message.metadata.message_type if message is not None else "unknown"


def serve(address: str, certificates: bytes | None) -> None:
    """Take the SuperNode's ClientApp tasks one after another, for as long as this process runs."""
    from flwr.proto.runtime_pb2 import AcquireTaskRequest  # pylint: disable=E0611
    from flwr.supercore.constant import TaskType
    from flwr.supercore.interceptors import RuntimeVersionHttpInterceptor

    from mcuforge.train.federated.deployment import client

    acquirer = _runtime_client(address, certificates, [RuntimeVersionHttpInterceptor(component_name="SuperExec")])
    request = AcquireTaskRequest(supported_task_types=[TaskType.CLIENT_APP.value])
    print(f"clientapp process {os.getpid()}: taking ClientApp tasks from the Runtime API at {address}", flush=True)
    while True:
        acquired = acquirer.AcquireTask(request)
        if not (acquired.HasField("task") and acquired.token):
            time.sleep(POLL_SECONDS)
            continue
        started = time.perf_counter()
        named = f"clientapp process {os.getpid()}: task {acquired.task.task_id} of run {acquired.task.run_id}"
        try:
            kind = run_task(address, certificates, acquired.token, client)
        except Exception:  # noqa: BLE001  (the SuperNode refused the reply, e.g. its run had ended: the next task may be fine)
            print(f"{named} could not hand back its reply:", flush=True)
            traceback.print_exc()
            continue
        print(f"{named} ({kind}) in {time.perf_counter() - started:.2f} s", flush=True)


class _OneLineErrors(argparse.ArgumentParser):
    """Bad options end in one `error:` line and status 2, as with the mcuforge CLI."""

    def error(self, message: str):
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    parser = _OneLineErrors(prog="python -m mcuforge.train.federated.clientapp_process", description=__doc__.split("\n")[0])
    parser.add_argument("--runtime-api-address", default="127.0.0.1:9094",
                        help="the SuperNode's Runtime API (its --host:--port; default 127.0.0.1:9094)")
    security = parser.add_mutually_exclusive_group(required=True)
    security.add_argument("--insecure", action="store_true", help="plain HTTP to the Runtime API (it listens on loopback)")
    security.add_argument("--root-certificates", type=Path, help="the CA of the Runtime API's certificate (its --ssl-certfile)")
    args = parser.parse_args(argv)
    certificates = None
    if args.root_certificates is not None:
        if not args.root_certificates.is_file():
            parser.error(f"--root-certificates: no such file {args.root_certificates}; give the Runtime API's CA certificate (PEM)")
        certificates = args.root_certificates.read_bytes()
    serve(args.runtime_api_address, certificates)


if __name__ == "__main__":
    main(sys.argv[1:])
