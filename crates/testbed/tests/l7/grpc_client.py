"""Calls /empire.Deathstar/<method> at <target> for each method named, in
order, on one channel (one HTTP/2 connection), printing one line per call:
"OK <reply>" or "<STATUS> <details>"."""
import sys

import grpc


def main():
    target, methods = sys.argv[1], sys.argv[2:]
    with grpc.insecure_channel(target) as channel:
        for method in methods:
            call = channel.unary_unary("/empire.Deathstar/" + method)
            try:
                print("OK", call(b"hi", timeout=3).decode(), flush=True)
            except grpc.RpcError as err:
                print(err.code().name, err.details(), flush=True)


if __name__ == "__main__":
    main()
