//! Conformance of the L3/L4 policy language with Cilium's (and Kubernetes')
//! semantics, proven with real packets: one table per construct, every case
//! with traffic it must let through and traffic it must drop, between netns
//! pods, the node itself (`host`) and addresses outside the cluster
//! (`ext`, `ext2`) against a real cilium-agent. The monitor's verdicts must
//! agree with what the packets did. Pods, outside hosts and the host are
//! dual-stack: every case runs over IPv4 and over IPv6 (see
//! `testbed::conformance`), CIDR cases with the family's prefixes and
//! `icmps` cases with the family's echo request. The pod-to-pod tables
//! run once more with the pods on two nodes, through the VXLAN tunnel
//! (`testbed::conformance::TwoNodes`).
//!
//! Cast (namespace `alpha`): `web` (app=web, tier=backend), `client`
//! (app=client, env=prod, container label role=tester), `other` (app=other).
//! Namespace `beta`: `remote` (app=client, env=dev), `stranger`
//! (app=stranger). Every pod serves TCP 80, 81, 8080, 9000 and UDP 53, 80;
//! `ext`/`ext2` serve TCP 80 and UDP 53; the host listens on a TCP port of
//! its own. Probe syntax and placeholders: see `testbed::conformance`.
//!
//! Needs root (and etcd for the two-node test). Each test starts its own
//! agent and pods; cases within a test share them but not their outcome.

use std::time::Duration;

use testbed::conformance::{parse_revision, Case, Cluster, PodSpec, TwoNodes};
use testbed::{Agent, AgentOptions, Pod};

const PODS: &[PodSpec] = &[
    PodSpec {
        name: "web",
        labels: &[
            "k8s:io.kubernetes.pod.namespace=alpha",
            "k8s:app=web",
            "k8s:tier=backend",
        ],
    },
    PodSpec {
        name: "client",
        labels: &[
            "k8s:io.kubernetes.pod.namespace=alpha",
            "k8s:app=client",
            "k8s:env=prod",
            "container:role=tester",
        ],
    },
    PodSpec {
        name: "other",
        labels: &["k8s:io.kubernetes.pod.namespace=alpha", "k8s:app=other"],
    },
    PodSpec {
        name: "remote",
        labels: &[
            "k8s:io.kubernetes.pod.namespace=beta",
            "k8s:app=client",
            "k8s:env=dev",
        ],
    },
    PodSpec {
        name: "stranger",
        labels: &["k8s:io.kubernetes.pod.namespace=beta", "k8s:app=stranger"],
    },
];

const SELECTORS: &[Case] = &[
    Case {
        name: "matchLabels selects every endpoint with the label, any namespace",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
"#,
        probes: &[
            "client -> web:80/tcp pass",
            "remote -> web:80/tcp pass",
            "other -> web:80/tcp drop",
            "stranger -> web:80/tcp drop",
        ],
    },
    Case {
        name: "several matchLabels are AND-ed",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client, env: prod}}]
"#,
        probes: &["client -> web:80/tcp pass", "remote -> web:80/tcp drop"],
    },
    Case {
        name: "In",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints:
    - matchExpressions: [{key: app, operator: In, values: [client, other]}]
"#,
        probes: &[
            "client -> web:80/tcp pass",
            "other -> web:80/tcp pass",
            "stranger -> web:80/tcp drop",
        ],
    },
    Case {
        name: "NotIn also matches endpoints lacking the key",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints:
    - matchExpressions: [{key: env, operator: NotIn, values: [prod]}]
"#,
        probes: &[
            "other -> web:80/tcp pass",
            "remote -> web:80/tcp pass",
            "client -> web:80/tcp drop",
        ],
    },
    Case {
        name: "Exists",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints:
    - matchExpressions: [{key: env, operator: Exists}]
"#,
        probes: &[
            "client -> web:80/tcp pass",
            "remote -> web:80/tcp pass",
            "other -> web:80/tcp drop",
            "stranger -> web:80/tcp drop",
        ],
    },
    Case {
        name: "DoesNotExist",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints:
    - matchExpressions: [{key: env, operator: DoesNotExist}]
"#,
        probes: &[
            "other -> web:80/tcp pass",
            "stranger -> web:80/tcp pass",
            "client -> web:80/tcp drop",
            "remote -> web:80/tcp drop",
        ],
    },
    Case {
        name: "matchLabels and matchExpressions in one selector are AND-ed",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints:
    - matchLabels: {app: client}
      matchExpressions: [{key: env, operator: In, values: [dev]}]
"#,
        probes: &["remote -> web:80/tcp pass", "client -> web:80/tcp drop"],
    },
    Case {
        name: "namespace labels io.cilium.k8s.namespace.labels.*",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints:
    - matchLabels: {"k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name": beta}
"#,
        probes: &[
            "remote -> web:80/tcp pass",
            "stranger -> web:80/tcp pass",
            "client -> web:80/tcp drop",
        ],
    },
    Case {
        name: "endpointSelector with an expression picks the protected endpoints",
        policy: r#"
- endpointSelector:
    matchExpressions: [{key: tier, operator: In, values: [backend]}]
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
"#,
        probes: &[
            "client -> web:80/tcp pass",
            "stranger -> web:80/tcp drop",
            "stranger -> other:80/tcp pass",
        ],
    },
];

#[test]
fn selectors_match_labels_and_expressions() {
    Cluster::check("selectors", PODS, SELECTORS);
}

const LABEL_SOURCES: &[Case] = &[
    Case {
        name: "k8s: source",
        policy: r#"
- endpointSelector: {matchLabels: {"k8s:app": web}}
  ingress:
  - fromEndpoints: [{matchLabels: {"k8s:app": client}}]
"#,
        probes: &["client -> web:80/tcp pass", "other -> web:80/tcp drop"],
    },
    Case {
        name: "any: source matches a container label",
        policy: r#"
- endpointSelector: {matchLabels: {"any:app": web}}
  ingress:
  - fromEndpoints: [{matchLabels: {"any:role": tester}}]
"#,
        probes: &["client -> web:80/tcp pass", "other -> web:80/tcp drop"],
    },
    Case {
        name: "bare key matches a container label",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {role: tester}}]
"#,
        probes: &["client -> web:80/tcp pass", "other -> web:80/tcp drop"],
    },
    Case {
        name: "container: source",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {"container:role": tester}}]
"#,
        probes: &["client -> web:80/tcp pass", "other -> web:80/tcp drop"],
    },
    Case {
        name: "a k8s: key does not match the same key from container:",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints:
    - matchLabels: {"k8s:role": tester}
    - matchLabels: {"k8s:app": other}
"#,
        probes: &["client -> web:80/tcp drop", "other -> web:80/tcp pass"],
    },
    Case {
        name: "reserved: source selects the world identity (world-ipv6 over IPv6)",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {"reserved:{WORLD}": ""}}]
"#,
        probes: &["ext -> web:80/tcp pass", "client -> web:80/tcp drop"],
    },
];

#[test]
fn label_sources_k8s_any_bare_container_reserved() {
    Cluster::check("label sources", PODS, LABEL_SOURCES);
}

const DIRECTIONS: &[Case] = &[
    Case {
        name: "fromEndpoints: an ingress-only policy leaves egress open",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
"#,
        probes: &[
            "client -> web:80/tcp pass",
            "other -> web:80/tcp drop",
            "web -> other:80/tcp pass",
            "web -> ext:80/tcp pass",
            "web -> host/tcp pass",
        ],
    },
    Case {
        name: "toEndpoints: an egress-only policy leaves ingress open",
        policy: r#"
- endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEndpoints: [{matchLabels: {app: web}}]
"#,
        probes: &[
            "client -> web:80/tcp pass",
            "client -> web:53/udp pass",
            "client -> other:80/tcp drop",
            "client -> ext:80/tcp drop",
            "other -> client:80/tcp pass",
        ],
    },
    Case {
        name: "a connection needs the client's egress and the server's ingress",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}, {matchLabels: {app: other}}]
- endpointSelector: {matchLabels: {app: other}}
  egress:
  - toEndpoints: [{matchLabels: {app: client}}]
- endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEndpoints: [{matchLabels: {app: web}}]
"#,
        probes: &[
            "client -> web:80/tcp pass",
            "other -> web:80/tcp drop",
            "other -> client:80/tcp pass",
            "client -> other:80/tcp drop",
            "stranger -> web:80/tcp drop",
        ],
    },
    Case {
        name: "ingress: [{}] allows nothing (but the local host)",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress: [{}]
"#,
        probes: &[
            "client -> web:80/tcp drop",
            "other -> web:53/udp drop",
            "ext -> web:80/tcp drop",
            "host -> web:80/tcp pass",
            "web -> client:80/tcp pass",
        ],
    },
    Case {
        name: "fromEndpoints: [{}] selects every endpoint",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{}]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
"#,
        probes: &[
            "client -> web:80/tcp pass",
            "remote -> web:80/tcp pass",
            "stranger -> web:80/tcp pass",
            "ext -> web:80/tcp pass",
            "client -> web:81/tcp drop",
        ],
    },
    Case {
        name: "rules selecting one endpoint are a union of allows",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: other}}]
    toPorts: [{ports: [{port: "81", protocol: TCP}]}]
"#,
        probes: &[
            "client -> web:80/tcp pass",
            "client -> web:81/tcp drop",
            "other -> web:81/tcp pass",
            "other -> web:80/tcp drop",
        ],
    },
];

#[test]
fn directions_ingress_egress_and_both_ends() {
    Cluster::check("directions", PODS, DIRECTIONS);
}

const TO_PORTS: &[Case] = &[
    Case {
        name: "port",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
"#,
        probes: &["client -> web:80/tcp pass", "client -> web:81/tcp drop"],
    },
    Case {
        name: "endPort range is inclusive at both ends",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "81", endPort: 8080, protocol: TCP}]}]
"#,
        probes: &[
            "client -> web:81/tcp pass",
            "client -> web:8080/tcp pass",
            "client -> web:80/tcp drop",
            "client -> web:9000/tcp drop",
        ],
    },
    Case {
        name: "protocol TCP does not open UDP on the same port",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
"#,
        probes: &["client -> web:80/tcp pass", "client -> web:80/udp drop"],
    },
    Case {
        name: "protocol UDP does not open TCP on the same port",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "80", protocol: UDP}]}]
"#,
        probes: &["client -> web:80/udp pass", "client -> web:80/tcp drop"],
    },
    Case {
        name: "protocol ANY covers TCP and UDP",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "80", protocol: ANY}]}]
"#,
        probes: &[
            "client -> web:80/tcp pass",
            "client -> web:80/udp pass",
            "client -> web:81/tcp drop",
            "client -> web:53/udp drop",
        ],
    },
    Case {
        name: "a Cilium port without protocol means ANY",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "80"}]}]
"#,
        probes: &[
            "client -> web:80/tcp pass",
            "client -> web:80/udp pass",
            "client -> web:53/udp drop",
        ],
    },
    Case {
        name: "port 0 means every port of the protocol",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "0", protocol: TCP}]}]
"#,
        probes: &[
            "client -> web:80/tcp pass",
            "client -> web:9000/tcp pass",
            "client -> web:53/udp drop",
        ],
    },
    Case {
        name: "toPorts without a peer applies to every peer",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - toPorts: [{ports: [{port: "80", protocol: TCP}]}]
"#,
        probes: &[
            "client -> web:80/tcp pass",
            "stranger -> web:80/tcp pass",
            "ext -> web:80/tcp pass",
            "client -> web:81/tcp drop",
        ],
    },
    Case {
        name: "egress toPorts",
        policy: r#"
- endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEndpoints: [{matchLabels: {app: web}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
"#,
        probes: &[
            "client -> web:8080/tcp pass",
            "client -> web:80/tcp drop",
            "client -> other:8080/tcp drop",
        ],
    },
];

#[test]
fn to_ports_port_ranges_and_protocols() {
    Cluster::check("toPorts", PODS, TO_PORTS);
}

const DENY: &[Case] = &[
    Case {
        name: "ingressDeny on a port beats an L3 allow of the same peer",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
  ingressDeny:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "81", protocol: TCP}]}]
"#,
        probes: &[
            "client -> web:80/tcp pass",
            "client -> web:53/udp pass",
            "client -> web:81/tcp deny",
        ],
    },
    Case {
        name: "ingressDeny of a peer beats allow-all",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEntities: [all]
  ingressDeny:
  - fromEndpoints: [{matchLabels: {app: other}}]
"#,
        probes: &[
            "client -> web:80/tcp pass",
            "ext -> web:80/tcp pass",
            "other -> web:80/tcp deny",
            "other -> web:53/udp deny",
        ],
    },
    Case {
        name: "egressDeny beats an allow in another rule",
        policy: r#"
- endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEntities: [all]
- endpointSelector: {matchLabels: {app: client}}
  egressDeny:
  - toEndpoints: [{matchLabels: {app: web}}]
"#,
        probes: &[
            "client -> web:80/tcp deny",
            "client -> other:80/tcp pass",
            "client -> ext:80/tcp pass",
        ],
    },
    Case {
        name: "a deny-only policy puts the direction in default deny",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingressDeny:
  - fromEndpoints: [{matchLabels: {app: other}}]
"#,
        probes: &[
            "other -> web:80/tcp deny",
            "client -> web:80/tcp drop",
            "host -> web:80/tcp pass",
            "web -> client:80/tcp pass",
        ],
    },
    Case {
        name: "a denied port range beats an exact allowed port inside it",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}, {port: "9000", protocol: TCP}]}]
  ingressDeny:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "8000", endPort: 8100, protocol: TCP}]}]
"#,
        probes: &["client -> web:8080/tcp deny", "client -> web:9000/tcp pass"],
    },
    Case {
        name: "a denied port inside an allowed range",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "81", endPort: 9000, protocol: TCP}]}]
  ingressDeny:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
"#,
        probes: &[
            "client -> web:81/tcp pass",
            "client -> web:8080/tcp deny",
            "client -> web:9000/tcp pass",
        ],
    },
    Case {
        name: "a deny of every peer on a port beats a specific peer's allow",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
  ingressDeny:
  - toPorts: [{ports: [{port: "81", protocol: TCP}]}]
"#,
        probes: &[
            "client -> web:80/tcp pass",
            "client -> web:81/tcp deny",
            "other -> web:81/tcp deny",
        ],
    },
    Case {
        name: "an ANY-protocol deny beats a TCP allow on the same port",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "80", protocol: TCP}, {port: "81", protocol: TCP}]}]
  ingressDeny:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "80", protocol: ANY}]}]
"#,
        probes: &[
            "client -> web:80/tcp deny",
            "client -> web:80/udp deny",
            "client -> web:81/tcp pass",
        ],
    },
    Case {
        name: "a deny naming the host overrides allow-localhost",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEntities: [all]
  ingressDeny:
  - fromEntities: [host]
"#,
        probes: &["host -> web:80/tcp deny", "client -> web:80/tcp pass"],
    },
    Case {
        name: "except carves a hole in a deny",
        policy: r#"
- endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEntities: [world]
  egressDeny:
  - toCIDRSet: [{cidr: "{EXT_NET}", except: ["{EXT}"]}]
"#,
        probes: &["client -> ext:80/tcp pass", "client -> ext2:80/tcp deny"],
    },
    Case {
        name: "egressDeny of a CIDR beats toEntities world",
        policy: r#"
- endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEntities: [world]
  egressDeny:
  - toCIDR: ["{EXT2}"]
"#,
        probes: &["client -> ext:80/tcp pass", "client -> ext2:80/tcp deny"],
    },
];

#[test]
fn deny_rules_beat_allows() {
    Cluster::check("deny", PODS, DENY);
}

const ENTITIES: &[Case] = &[
    Case {
        name: "cluster matches pods and the host, not the world",
        policy: r#"
- endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEntities: [cluster]
"#,
        probes: &[
            "client -> web:80/tcp pass",
            "client -> remote:80/tcp pass",
            "client -> host/tcp pass",
            "client -> ext:80/tcp drop",
        ],
    },
    Case {
        name: "world matches outside addresses, not pods or the host",
        policy: r#"
- endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEntities: [world]
"#,
        probes: &[
            "client -> ext:80/tcp pass",
            "client -> ext2:53/udp pass",
            "client -> web:80/tcp drop",
            "client -> host/tcp drop",
        ],
    },
    Case {
        name: "fromEntities world admits outside peers only",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEntities: [world]
"#,
        probes: &["ext -> web:80/tcp pass", "client -> web:80/tcp drop"],
    },
    Case {
        name: "fromEntities cluster admits pods of every namespace, not the world",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEntities: [cluster]
"#,
        probes: &[
            "client -> web:80/tcp pass",
            "remote -> web:80/tcp pass",
            "ext -> web:80/tcp drop",
        ],
    },
    Case {
        name: "all matches everything",
        policy: r#"
- endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEntities: [all]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
"#,
        probes: &[
            "client -> web:80/tcp pass",
            "client -> ext:80/tcp pass",
            "client -> web:81/tcp drop",
        ],
    },
    Case {
        name: "host is the node itself",
        policy: r#"
- endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEntities: [host]
"#,
        probes: &[
            "client -> host/tcp pass",
            "client -> web:80/tcp drop",
            "client -> ext:80/tcp drop",
        ],
    },
];

#[test]
fn entities_world_cluster_host_all() {
    Cluster::check("entities", PODS, ENTITIES);
}

const CIDR: &[Case] = &[
    Case {
        name: "toCIDR",
        policy: r#"
- endpointSelector: {matchLabels: {app: client}}
  egress:
  - toCIDR: ["{EXT}"]
"#,
        probes: &[
            "client -> ext:80/tcp pass",
            "client -> ext2:80/tcp drop",
            "client -> web:80/tcp drop",
        ],
    },
    Case {
        name: "toCIDRSet except carves a hole",
        policy: r#"
- endpointSelector: {matchLabels: {app: client}}
  egress:
  - toCIDRSet: [{cidr: "{EXT_NET}", except: ["{EXT2}"]}]
"#,
        probes: &[
            "client -> ext:80/tcp pass",
            "client -> ext:53/udp pass",
            "client -> ext2:80/tcp drop",
        ],
    },
    Case {
        name: "CIDR rules never match pods, even covering the pod range",
        policy: r#"
- endpointSelector: {matchLabels: {app: client}}
  egress:
  - toCIDR: ["{POD_NET}", "{EXT}"]
"#,
        probes: &[
            "client -> ext:80/tcp pass",
            "client -> web:80/tcp drop",
            "client -> other:53/udp drop",
        ],
    },
    Case {
        name: "toCIDR 0.0.0.0/0 (::/0) is the world, not pods or the host",
        policy: r#"
- endpointSelector: {matchLabels: {app: client}}
  egress:
  - toCIDR: ["{ANY}"]
"#,
        probes: &[
            "client -> ext:80/tcp pass",
            "client -> web:80/tcp drop",
            "client -> host/tcp drop",
        ],
    },
    Case {
        name: "fromCIDR",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromCIDR: ["{EXT}"]
"#,
        probes: &[
            "ext -> web:80/tcp pass",
            "ext2 -> web:80/tcp drop",
            "client -> web:80/tcp drop",
        ],
    },
    Case {
        name: "fromCIDRSet except",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromCIDRSet: [{cidr: "{EXT_NET}", except: ["{EXT}"]}]
"#,
        probes: &[
            "ext2 -> web:80/tcp pass",
            "ext -> web:80/tcp drop",
            "ext -> web:53/udp drop",
        ],
    },
    Case {
        name: "CIDR and ports in one rule are AND-ed",
        policy: r#"
- endpointSelector: {matchLabels: {app: client}}
  egress:
  - toCIDR: ["{EXT}"]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
"#,
        probes: &["client -> ext:80/tcp pass", "client -> ext:53/udp drop"],
    },
];

#[test]
fn cidr_rules_and_except() {
    Cluster::check("CIDR", PODS, CIDR);
}

const NETWORK_POLICY: &[Case] = &[
    Case {
        name: "podSelector + policyTypes Ingress; a podSelector peer is its namespace",
        policy: r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-client, namespace: alpha}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: 80, protocol: TCP}]
"#,
        probes: &[
            "client -> web:80/tcp pass",
            "client -> web:81/tcp drop",
            "other -> web:80/tcp drop",
            "remote -> web:80/tcp drop",
            "web -> other:80/tcp pass",
        ],
    },
    Case {
        name: "empty podSelector selects every pod of its namespace only",
        policy: r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: alpha}
spec:
  podSelector: {}
  policyTypes: [Ingress]
"#,
        probes: &[
            "client -> web:80/tcp drop",
            "web -> other:80/tcp drop",
            "remote -> client:53/udp drop",
            "web -> remote:80/tcp pass",
            "client -> stranger:80/tcp pass",
            "host -> web:80/tcp pass",
        ],
    },
    Case {
        name: "namespaceSelector selects pods in another namespace",
        policy: r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-beta, namespace: alpha}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: beta}}
"#,
        probes: &[
            "remote -> web:80/tcp pass",
            "stranger -> web:80/tcp pass",
            "client -> web:80/tcp drop",
            "ext -> web:80/tcp drop",
        ],
    },
    Case {
        name: "namespaceSelector and podSelector in one peer are AND-ed",
        policy: r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-beta-clients, namespace: alpha}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: beta}}
      podSelector: {matchLabels: {app: client}}
"#,
        probes: &[
            "remote -> web:80/tcp pass",
            "stranger -> web:80/tcp drop",
            "client -> web:80/tcp drop",
        ],
    },
    Case {
        name: "several peers are OR-ed",
        policy: r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-beta-or-clients, namespace: alpha}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: beta}}
    - podSelector: {matchLabels: {app: client}}
"#,
        probes: &[
            "remote -> web:80/tcp pass",
            "stranger -> web:80/tcp pass",
            "client -> web:80/tcp pass",
            "other -> web:80/tcp drop",
        ],
    },
    Case {
        name: "empty namespaceSelector selects pods of every namespace, not the world",
        policy: r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-all-pods, namespace: alpha}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{namespaceSelector: {}}]
"#,
        probes: &[
            "client -> web:80/tcp pass",
            "remote -> web:80/tcp pass",
            "ext -> web:80/tcp drop",
        ],
    },
    Case {
        name: "ipBlock with except; ipBlock never matches pods",
        policy: r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-to-outside, namespace: alpha}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress:
  - to:
    - ipBlock: {cidr: "{EXT_NET}", except: ["{EXT2}"]}
    - ipBlock: {cidr: "{POD_NET}"}
"#,
        probes: &[
            "client -> ext:80/tcp pass",
            "client -> ext2:80/tcp drop",
            "client -> web:80/tcp drop",
            "other -> web:80/tcp pass",
        ],
    },
    Case {
        name: "two NetworkPolicy objects in one file are a union",
        policy: r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-client, namespace: alpha}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: 80}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-other, namespace: alpha}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: other}}}]
    ports: [{port: 81}]
"#,
        probes: &[
            "client -> web:80/tcp pass",
            "other -> web:81/tcp pass",
            "client -> web:81/tcp drop",
            "other -> web:80/tcp drop",
        ],
    },
    Case {
        name: "ports with endPort",
        policy: r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-range, namespace: alpha}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - ports: [{port: 81, endPort: 8080, protocol: TCP}]
"#,
        probes: &[
            "client -> web:81/tcp pass",
            "remote -> web:8080/tcp pass",
            "client -> web:80/tcp drop",
            "client -> web:9000/tcp drop",
        ],
    },
    Case {
        name: "a port without protocol is TCP",
        policy: r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-80, namespace: alpha}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - ports: [{port: 80}]
"#,
        probes: &["client -> web:80/tcp pass", "client -> web:80/udp drop"],
    },
    Case {
        name: "ingress: [{}] allows everything; an isolated direction without rules nothing",
        policy: r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-open-in-closed-out, namespace: alpha}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress, Egress]
  ingress: [{}]
"#,
        probes: &[
            "client -> web:81/tcp pass",
            "ext -> web:80/tcp pass",
            "stranger -> web:53/udp pass",
            "web -> client:80/tcp drop",
        ],
    },
    Case {
        name: "policyTypes Egress only leaves ingress open",
        policy: r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-out, namespace: alpha}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {app: client}}}]
"#,
        probes: &[
            "web -> client:80/tcp pass",
            "web -> other:80/tcp drop",
            "other -> web:80/tcp pass",
        ],
    },
];

#[test]
fn kubernetes_network_policy_objects() {
    Cluster::check("NetworkPolicy", PODS, NETWORK_POLICY);
}

const CILIUM_NETWORK_POLICY: &[Case] = &[
    Case {
        name: "fromEndpoints: [{}] means every pod of the policy's namespace",
        policy: r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web-from-alpha, namespace: alpha}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{}]
"#,
        probes: &[
            "client -> web:80/tcp pass",
            "other -> web:80/tcp pass",
            "remote -> web:80/tcp drop",
            "stranger -> web:80/tcp drop",
        ],
    },
    Case {
        name: "endpointSelector selects only the policy's namespace",
        policy: r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: lock-beta-clients, namespace: beta}
spec:
  endpointSelector: {matchLabels: {app: client}}
  ingress: [{}]
"#,
        probes: &["web -> client:80/tcp pass", "web -> remote:80/tcp drop"],
    },
    Case {
        name: "peers of other namespaces need the namespace label",
        policy: r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web-from-beta-clients, namespace: alpha}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints:
    - matchLabels: {"k8s:io.kubernetes.pod.namespace": beta, app: client}
"#,
        probes: &["remote -> web:80/tcp pass", "client -> web:80/tcp drop"],
    },
    Case {
        name: "specs: every rule of the object applies",
        policy: r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: two-specs, namespace: alpha}
specs:
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
- endpointSelector: {matchLabels: {app: other}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: web}}]
"#,
        probes: &[
            "client -> web:80/tcp pass",
            "other -> web:80/tcp drop",
            "web -> other:80/tcp pass",
            "client -> other:80/tcp drop",
        ],
    },
];

#[test]
fn namespaced_cilium_network_policy_objects() {
    Cluster::check("CiliumNetworkPolicy", PODS, CILIUM_NETWORK_POLICY);
}

const ICMP_TYPES: &[Case] = &[
    Case {
        name: "icmps type 8 (ICMPv6 128) allows echo requests only",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    icmps: [{fields: [{{ECHO}}]}]
"#,
        probes: &[
            "client -> web/icmp pass",
            "other -> web/icmp drop",
            "client -> web:80/tcp drop",
        ],
    },
    Case {
        name: "a TCP port rule does not allow ICMP",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
"#,
        probes: &["client -> web:80/tcp pass", "client -> web/icmp drop"],
    },
    Case {
        name: "egress icmps",
        policy: r#"
- endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEndpoints: [{matchLabels: {app: web}}]
    icmps: [{fields: [{{ECHO}}]}]
"#,
        probes: &[
            "client -> web/icmp pass",
            "client -> other/icmp drop",
            "client -> web:80/tcp drop",
        ],
    },
    Case {
        name: "an ICMP deny beats an L3 allow",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
  ingressDeny:
  - fromEndpoints: [{matchLabels: {app: client}}]
    icmps: [{fields: [{{ECHO}}]}]
"#,
        probes: &["client -> web:80/tcp pass", "client -> web/icmp deny"],
    },
];

#[test]
fn icmp_type_rules() {
    Cluster::check("ICMP", PODS, ICMP_TYPES);
}

/// The pod-to-pod tables again with the pods on two nodes: web and
/// stranger on node 1, the rest on node 0, so most probes cross the VXLAN
/// tunnel (over IPv4 and IPv6; the underlay stays IPv4) and are judged by
/// the receiving node against the identity the VNI carries, while
/// stranger -> web stays on node 1. Same cases, same expectations.
#[test]
fn pod_to_pod_tables_hold_across_two_nodes() {
    let lab = TwoNodes::start(PODS, &["web", "stranger"]).expect("the two-node fixture starts");
    lab.check(&[
        ("selectors", SELECTORS),
        ("label sources", LABEL_SOURCES),
        ("directions", DIRECTIONS),
        ("toPorts", TO_PORTS),
        ("deny", DENY),
        ("entities", ENTITIES),
        ("NetworkPolicy", NETWORK_POLICY),
        ("CiliumNetworkPolicy", CILIUM_NETWORK_POLICY),
        ("ICMP", ICMP_TYPES),
    ]);
}

const GOOD_AND_BAD_RULES: &str = r#"
- endpointSelector: {matchLabels: {app: web}}
  labels: ["k8s:case=good-first"]
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
- endpointSelector: {matchLabels: {app: web}}
  labels: ["k8s:case=bad"]
  ingress:
  - fromEndpoints: [{matchLabels: {app: other}}]
    toPorts: [{ports: [{port: "80", endPort: 79, protocol: TCP}]}]
- endpointSelector: {matchLabels: {app: client}}
  labels: ["k8s:case=good-last"]
  egress:
  - toEntities: [world]
"#;

#[test]
fn bad_input_names_rule_and_field_and_changes_nothing() {
    let agent = Agent::start_with(AgentOptions::default().with_unique_range()).unwrap();
    let web = Pod::create(&agent, "web", &["k8s:app=web"]).unwrap();
    let client = Pod::create(&agent, "client", &["k8s:app=client"]).unwrap();
    let _server = web.serve_tcp(80).unwrap();

    // Some policy is in place already; a bad import must leave it alone.
    let existing = agent.temp_dir().join("existing.yaml");
    std::fs::write(
        &existing,
        "- endpointSelector: {matchLabels: {app: web}}\n  ingress: [{}]\n",
    )
    .unwrap();
    agent
        .cli_ok(&["policy", "import", existing.to_str().unwrap()])
        .unwrap();
    let before = agent.client().policy_get().unwrap();
    web.wait_for_policy_revision(&agent, before.revision, Duration::from_secs(5))
        .unwrap();

    let bad = agent.temp_dir().join("bad.yaml");
    std::fs::write(&bad, GOOD_AND_BAD_RULES).unwrap();
    for verb in ["validate", "import"] {
        let out = agent.cli(&["policy", verb, bad.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "`cilium policy {verb}` accepted a file with a bad rule:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            stderr.contains("1]") || stderr.contains("rule 1") || stderr.contains("[1"),
            "`cilium policy {verb}` should name the bad rule (index 1): {stderr}"
        );
        assert!(
            stderr.contains("endPort"),
            "`cilium policy {verb}` should name the bad field (endPort): {stderr}"
        );
    }

    let after = agent.client().policy_get().unwrap();
    assert_eq!(after.revision, before.revision, "the revision moved");
    assert_eq!(after.policy, before.policy, "the rules changed");
    let get = agent.cli_ok(&["policy", "get"]).unwrap();
    assert_eq!(parse_revision(&get).unwrap(), before.revision);
    assert!(
        !get.contains("good-first") && !get.contains("good-last"),
        "a good rule of the rejected file was added:\n{get}"
    );
    // Enforcement is unchanged too: the good rule admitting client is absent.
    assert!(
        !client.tcp_connect(web.ip(), 80, Duration::from_millis(400)),
        "client reaches web: a rule of the rejected file is enforced"
    );
}
