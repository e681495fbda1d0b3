//! cilium-cni: reads the CNI environment and stdin, prints the result or
//! the error JSON, exits non-zero on error.

use std::io::{Read, Write};

fn main() {
    let mut stdin = Vec::new();
    let reply = match std::io::stdin().read_to_end(&mut stdin) {
        Ok(_) => cni::run(&|key| std::env::var(key).ok(), &stdin),
        Err(e) => cni::Reply {
            stdout: cni::CniError::new(
                cni::error::code::IO_FAILURE,
                "cannot read the network configuration from stdin",
                e.to_string(),
            )
            .to_json(cni::version::DEFAULT_VERSION),
            exit_code: 1,
        },
    };
    if reply.exit_code != 0 {
        // Runtimes show stdout's JSON; stderr helps whoever runs it by hand.
        eprintln!("cilium-cni: {}", reply.stdout);
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(reply.stdout.as_bytes());
    let _ = out.flush();
    std::process::exit(reply.exit_code);
}
