//! Names unique per process and call, so that several test processes (and
//! leftovers of crashed ones) never collide on a namespace, link or path.

use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// `<pid>-<n>` with `n` counting up within this process.
pub fn next_tag() -> String {
    let (pid, n) = next_pair();
    format!("{pid}-{n}")
}

/// The process id and the next value of the per-process counter.
pub fn next_pair() -> (u32, u32) {
    (std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Host-side veth name: `lxc` + 12 hex digits, within the kernel's 15-byte
/// limit (IFNAMSIZ - 1) and shaped like Cilium's `lxc<hash>` names.
pub fn host_ifname(pid: u32, n: u32) -> String {
    format!("lxc{:06x}{:06x}", pid & 0xff_ffff, n & 0xff_ffff)
}

/// Namespace name `cilt-<pid>-<n>-<name>`; the pod name is cut to keep
/// `ip netns list` readable, and reduced to characters safe in a path.
pub fn netns_name(pid: u32, n: u32, pod: &str) -> String {
    let clean: String = pod
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(24)
        .collect();
    format!("cilt-{pid}-{n}-{clean}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ifname_fits_ifnamsiz() {
        let name = host_ifname(u32::MAX, u32::MAX);
        assert!(name.len() <= 15, "{name} is {} bytes", name.len());
        assert_ne!(host_ifname(1, 2), host_ifname(1, 3));
        assert_ne!(host_ifname(1, 2), host_ifname(2, 2));
    }

    #[test]
    fn netns_name_is_path_safe_and_bounded() {
        let name = netns_name(42, 7, "a/b c-really-long-pod-name-that-goes-on");
        assert!(name.starts_with("cilt-42-7-a-b-c-"));
        assert!(!name.contains('/'));
        assert!(name.len() <= "cilt-42-7-".len() + 24);
    }

    #[test]
    fn tags_differ_per_call() {
        assert_ne!(next_tag(), next_tag());
    }
}
