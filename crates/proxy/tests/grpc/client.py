"""Calls /demo.Greeter/<method> at <target> and prints "<STATUS> <reply>";
with a third argument N, sends N bytes and prints the reply's length instead."""
import sys

import grpc


def main():
    target, method = sys.argv[1], sys.argv[2]
    size = int(sys.argv[3]) if len(sys.argv) > 3 else None
    payload = b"x" * size if size else b"hi"
    options = [("grpc.max_receive_message_length", 64 << 20)]
    with grpc.insecure_channel(target, options=options) as channel:
        call = channel.unary_unary("/demo.Greeter/" + method)
        try:
            reply = call(payload, timeout=10)
            print("OK", len(reply) if size else reply.decode())
        except grpc.RpcError as err:
            print(err.code().name, err.details())


if __name__ == "__main__":
    main()
