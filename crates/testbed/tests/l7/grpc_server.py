"""gRPC server for the L7 acceptance tests: service empire.Deathstar with
methods RequestLanding and ExhaustPort, each answering b"<method>:" + the
request bytes. Listens on 0.0.0.0:<port> and prints "serving" once it does;
runs until killed."""
import sys
from concurrent import futures

import grpc

METHODS = ("RequestLanding", "ExhaustPort")


def handler(method):
    return grpc.unary_unary_rpc_method_handler(
        lambda request, context: method.encode() + b":" + request
    )


def main():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handlers = {method: handler(method) for method in METHODS}
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("empire.Deathstar", handlers),)
    )
    server.add_insecure_port(f"0.0.0.0:{sys.argv[1]}")
    server.start()
    print("serving", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
