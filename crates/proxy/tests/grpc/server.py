"""A gRPC server for the proxy tests: service demo.Greeter with methods
Allowed and Denied (raw bytes in, b"echo:" + bytes out). Prints its port."""
import sys
from concurrent import futures

import grpc


def echo(request, context):
    return b"echo:" + request


def main():
    limits = [
        ("grpc.max_receive_message_length", 64 << 20),
        ("grpc.max_send_message_length", 64 << 20),
    ]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=limits)
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(echo)
        for name in ("Allowed", "Denied")
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("demo.Greeter", handlers),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    sys.stdin.read()  # runs until the test closes stdin
    server.stop(0)


if __name__ == "__main__":
    main()
