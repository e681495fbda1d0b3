//! The policies of Cilium's Star Wars demo, shared by `make demo` (imported
//! with the CLI) and `make demo-k8s` (applied with kubectl as a
//! CiliumNetworkPolicy).

pub const L3_L4_POLICY: &str = "\
- endpointSelector:
    matchLabels: {org: empire, class: deathstar}
  description: L3-L4 policy to restrict deathstar access to empire ships only
  ingress:
  - fromEndpoints:
    - matchLabels: {org: empire}
    toPorts:
    - ports:
      - port: \"80\"
        protocol: TCP
";

pub const L7_POLICY: &str = "\
- endpointSelector:
    matchLabels: {org: empire, class: deathstar}
  description: L7 policy to restrict access to specific HTTP call
  ingress:
  - fromEndpoints:
    - matchLabels: {org: empire}
    toPorts:
    - ports:
      - port: \"80\"
        protocol: TCP
      rules:
        http:
        - method: POST
          path: /v1/request-landing
";

/// `rules` (a YAML list of Cilium rules) as the CiliumNetworkPolicy `name`
/// in the default namespace.
pub fn as_cnp(name: &str, rules: &str) -> String {
    let specs: String = rules.lines().map(|line| format!("  {line}\n")).collect();
    format!("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: {name}\nspecs:\n{specs}")
}
