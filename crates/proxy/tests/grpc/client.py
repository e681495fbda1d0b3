"""Calls /demo.Greeter/<method> at <target> and prints "<STATUS> <reply>"."""
import sys

import grpc


def main():
    target, method = sys.argv[1], sys.argv[2]
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary("/demo.Greeter/" + method)
        try:
            reply = call(b"hi", timeout=10)
            print("OK", reply.decode())
        except grpc.RpcError as err:
            print(err.code().name, err.details())


if __name__ == "__main__":
    main()
