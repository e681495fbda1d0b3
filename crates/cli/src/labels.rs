//! Label strings (`source:key[=value]`) as the CLI compares them.

/// Splits a label into (source, key, value); a label without a source is
/// `unspec`, Cilium's default.
pub fn split(label: &str) -> (&str, &str, &str) {
    let (kv, source) = match label.split_once(':') {
        // A ':' after '=' belongs to the value, not to a source prefix.
        Some((src, rest)) if !src.contains('=') => (rest, src),
        _ => (label, "unspec"),
    };
    match kv.split_once('=') {
        Some((k, v)) => (source, k, v),
        None => (source, kv, ""),
    }
}

/// Whether `a` and `b` name the same label; `unspec` and `any` match every
/// source, as when a user types `app=web` for `container:app=web`.
pub fn same(a: &str, b: &str) -> bool {
    let (sa, ka, va) = split(a);
    let (sb, kb, vb) = split(b);
    let wildcard = |s: &str| s == "unspec" || s == "any";
    ka == kb && va == vb && (sa == sb || wildcard(sa) || wildcard(sb))
}

/// Sorted copy, the order Cilium prints labels in.
pub fn sorted(labels: &[String]) -> Vec<String> {
    let mut v = labels.to_vec();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_source_key_value() {
        assert_eq!(split("k8s:app=web"), ("k8s", "app", "web"));
        assert_eq!(split("app=web"), ("unspec", "app", "web"));
        assert_eq!(split("reserved:host"), ("reserved", "host", ""));
        assert_eq!(split("url=http://x"), ("unspec", "url", "http://x"));
        assert_eq!(
            split("k8s:io.kubernetes.pod.namespace=default"),
            ("k8s", "io.kubernetes.pod.namespace", "default")
        );
    }

    #[test]
    fn unspec_matches_any_source() {
        assert!(same("app=web", "container:app=web"));
        assert!(same("k8s:app=web", "k8s:app=web"));
        assert!(!same("k8s:app=web", "container:app=web"));
        assert!(!same("app=web", "app=db"));
    }
}
