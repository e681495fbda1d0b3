#!/usr/bin/env python3
"""Writes the Cilium CRDs in install/kubernetes/crds/, one plain YAML document each.

A CRD schema cannot refer to another part of itself, so the policy rule (and
the label selector inside it) would be copied a dozen times over by hand. It is
written once here instead, as Python data, and expanded into each file.

    install/kubernetes/gen-crds.py          # rewrite the files
    install/kubernetes/gen-crds.py --check  # exit 1 if a file differs from what this writes

No dependencies beyond Python 3: the emitter below writes the small YAML subset
the schemas need (maps, lists, strings, integers, booleans).
"""

import json
import re
import sys
from pathlib import Path

GROUP = "cilium.io"
VERSION = "v2"
OUT = Path(__file__).resolve().parent / "crds"

# --- schema building blocks -------------------------------------------------


def string(description=None, **extra):
    return _with_description({"type": "string", **extra}, description)


def integer(description=None, **extra):
    return _with_description({"type": "integer", **extra}, description)


def boolean(description=None):
    return _with_description({"type": "boolean"}, description)


def array(items, description=None, **extra):
    return _with_description({"type": "array", "items": items, **extra}, description)


def obj(properties, description=None, required=None, rules=None):
    """rules: (CEL rule, message) or (rule, message, extra fields such as fieldPath)."""
    schema = _with_description({"type": "object"}, description)
    if required:
        schema["required"] = required
    schema["properties"] = properties
    if rules:
        schema["x-kubernetes-validations"] = [
            {"rule": r[0], "message": r[1], **(r[2] if len(r) > 2 else {})} for r in rules
        ]
    return schema


def string_map(description=None):
    return _with_description(
        {"type": "object", "additionalProperties": {"type": "string"}}, description
    )


def opaque(description):
    """An object whose inside this schema does not describe (kept as written)."""
    return {
        "type": "object",
        "description": description,
        "x-kubernetes-preserve-unknown-fields": True,
    }


def _with_description(schema, description):
    if description:
        return {"description": description, **schema}
    return schema


# A number 0-65535 (0 = every port) or an IANA service name (a named port).
PORT_PATTERN = (
    r"^(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})$"
    # Hyphen-separated letters and digits with at least one letter; maxLength
    # on the field keeps it to 15 characters.
    r"|^([a-z0-9]+-)*[a-z0-9]*[a-z][a-z0-9]*(-[a-z0-9]+)*$"
)
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
# An IPv4 or IPv6 address with an optional prefix length (none = one address).
# The IPv6 half only checks the alphabet and that there is a colon.
CIDR_PATTERN = (
    rf"^({_OCTET}\.){{3}}{_OCTET}(/([0-9]|[12][0-9]|3[0-2]))?$"
    r"|^[0-9a-fA-F.]*:[0-9a-fA-F:.]*(/([0-9]|[1-9][0-9]|1[01][0-9]|12[0-8]))?$"
)
ENTITIES = [
    "all", "world", "world-ipv4", "world-ipv6", "cluster", "host", "remote-node",
    "kube-apiserver", "ingress", "health", "init", "unmanaged", "none",
]
PROTOCOLS = ["TCP", "UDP", "SCTP", "ICMP", "ICMPV6", "ANY"]


def label_selector(description):
    return obj(
        {
            "matchLabels": string_map(
                "Labels the endpoint must carry, key to value. A key may name its "
                "source (k8s:app, any:app, reserved:host); without one it matches any source."
            ),
            "matchExpressions": array(
                obj(
                    {
                        "key": string("The label key (optionally source:key)."),
                        "operator": string(
                            "How the key's values are compared.",
                            enum=["In", "NotIn", "Exists", "DoesNotExist"],
                        ),
                        "values": array(
                            string(),
                            "Values for In and NotIn; must be empty for Exists and DoesNotExist.",
                        ),
                    },
                    required=["key", "operator"],
                    rules=[(
                        "self.operator in ['In', 'NotIn'] ? has(self.values) && size(self.values) > 0"
                        " : !has(self.values) || size(self.values) == 0",
                        "values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist",
                    )],
                ),
                "Requirements that must all hold (AND).",
            ),
        },
        description,
    )


def selectors(description):
    return array(label_selector("One selector; the list matches if any does."), description)


def cidr_list(description):
    return array(string(pattern=CIDR_PATTERN), description)


def cidr_set(description):
    return array(
        obj(
            {
                "cidr": string("The prefix, e.g. 10.0.0.0/8.", pattern=CIDR_PATTERN),
                "except": cidr_list("Prefixes inside cidr that are left out."),
            },
            required=["cidr"],
        ),
        description,
    )


def entities(description):
    return array(string(enum=ENTITIES), description)


PORT_PROTOCOL = obj(
    {
        "port": string(
            "Port number as a string (\"80\"; \"0\" = every port) or a named container port.",
            pattern=PORT_PATTERN,
            maxLength=15,
        ),
        "endPort": integer(
            "Last port of a range that starts at port (inclusive).",
            format="int32", minimum=0, maximum=65535,
        ),
        "protocol": string("L4 protocol; ANY (the default) means TCP, UDP and SCTP.", enum=PROTOCOLS),
    },
    required=["port"],
)

HTTP_RULE = obj(
    {
        "method": string("Extended regular expression the request method must match."),
        "path": string("Extended regular expression the whole URL path must match."),
        "host": string("Extended regular expression the Host header must match."),
        "headers": array(string(), "Headers that must be present: \"Name\" or \"Name: value\"."),
        "headerMatches": array(
            obj(
                {
                    "name": string("Header name."),
                    "value": string("Value the header must have."),
                    "mismatch": string(
                        "What to do when the value differs (default: deny).",
                        enum=["LOG", "ADD", "DELETE", "REPLACE"],
                    ),
                    "secret": obj(
                        {"namespace": string(), "name": string()},
                        "A Secret holding the value, instead of value.",
                        required=["name"],
                    ),
                },
                required=["name"],
            ),
            "Header conditions with values and mismatch actions.",
        ),
    }
)

KAFKA_RULE = obj(
    {
        "role": string("produce or consume: a set of API keys (excludes apiKey).", enum=["produce", "consume"]),
        "apiKey": string("One Kafka API key by name, e.g. produce, fetch, metadata."),
        "apiVersion": string("API version, as a string (\"0\")."),
        "clientID": string("Client ID the request must carry."),
        "topic": string("Topic the request must name.", maxLength=255),
    }
)

DNS_RULE = obj(
    {
        "matchName": string("A fully qualified name, matched exactly.", maxLength=255),
        "matchPattern": string("A name pattern where * stands for any characters.", maxLength=255),
    }
)


def port_rules(with_l7):
    properties = {"ports": array(PORT_PROTOCOL, "Ports the rule covers; empty = every port.")}
    if with_l7:
        properties["rules"] = obj(
            {
                "http": array(HTTP_RULE, "HTTP requests allowed (any rule matching is enough)."),
                "kafka": array(KAFKA_RULE, "Kafka requests allowed."),
                "dns": array(DNS_RULE, "DNS names that may be looked up."),
            },
            "L7 rules for traffic on these ports: use one protocol per entry.",
        )
    return array(obj(properties), "Ports (and, on allow rules, L7 rules) the peers may use.")


ICMP_RULES = array(
    obj(
        {
            "fields": array(
                obj(
                    {
                        "family": string("IPv4 (the default) or IPv6.", enum=["IPv4", "IPv6"]),
                        "type": {
                            "description": "ICMP type: a number 0-255 or a name such as EchoRequest.",
                            "x-kubernetes-int-or-string": True,
                            "anyOf": [{"type": "integer"}, {"type": "string"}],
                            "minimum": 0,
                            "maximum": 255,
                            "pattern": r"^([0-9]{1,3}|[A-Za-z]+)$",
                        },
                    },
                    required=["type"],
                ),
                "ICMP types allowed.",
            )
        }
    ),
    "ICMP types the peers may use (instead of toPorts).",
)

FQDN_SELECTORS = array(DNS_RULE, "DNS names the endpoint may reach (names learned from DNS answers).")
SERVICE_SELECTORS = array(
    opaque("A Kubernetes service by name (k8sService) or by labels (k8sServiceSelector)."),
    "Services whose backends the endpoint may reach.",
)


def ingress_rule(deny):
    kind = "deny" if deny else "allow"
    return obj(
        {
            "fromEndpoints": selectors(f"Endpoints to {kind} traffic from."),
            "fromRequires": selectors("Extra conditions every peer of this rule must meet."),
            "fromEntities": entities(f"Classes of peers to {kind} traffic from."),
            "fromCIDR": cidr_list(f"Prefixes (outside the cluster) to {kind} traffic from."),
            "fromCIDRSet": cidr_set(f"Prefixes with exceptions to {kind} traffic from."),
            "fromNodes": selectors(f"Nodes to {kind} traffic from, by node labels."),
            "toPorts": port_rules(with_l7=not deny),
            "icmps": ICMP_RULES,
        },
        f"One ingress {kind} rule: which peers, on which ports. No peer field = every peer.",
    )


def egress_rule(deny):
    kind = "deny" if deny else "allow"
    properties = {
        "toEndpoints": selectors(f"Endpoints to {kind} traffic to."),
        "toRequires": selectors("Extra conditions every peer of this rule must meet."),
        "toEntities": entities(f"Classes of peers to {kind} traffic to."),
        "toCIDR": cidr_list(f"Prefixes (outside the cluster) to {kind} traffic to."),
        "toCIDRSet": cidr_set(f"Prefixes with exceptions to {kind} traffic to."),
        "toNodes": selectors(f"Nodes to {kind} traffic to, by node labels."),
        "toServices": SERVICE_SELECTORS,
        "toPorts": port_rules(with_l7=not deny),
        "icmps": ICMP_RULES,
    }
    if not deny:
        properties["toFQDNs"] = FQDN_SELECTORS
    return obj(
        properties,
        f"One egress {kind} rule: which peers, on which ports. No peer field = every peer.",
    )


def rule(clusterwide):
    properties = {
        "endpointSelector": label_selector("The endpoints this rule applies to."),
    }
    rules = None
    required = ["endpointSelector"]
    if clusterwide:
        properties["nodeSelector"] = label_selector(
            "The nodes this rule applies to (host policy), instead of endpointSelector."
        )
        rules = [(
            "has(self.endpointSelector) != has(self.nodeSelector)",
            "set exactly one of endpointSelector and nodeSelector",
        )]
        required = None
    properties.update(
        {
            "ingress": array(ingress_rule(deny=False), "Traffic allowed into the endpoints."),
            "ingressDeny": array(ingress_rule(deny=True), "Traffic denied into the endpoints (wins over allow)."),
            "egress": array(egress_rule(deny=False), "Traffic the endpoints may send."),
            "egressDeny": array(egress_rule(deny=True), "Traffic the endpoints may not send (wins over allow)."),
            "enableDefaultDeny": obj(
                {
                    "ingress": boolean("Whether the ingress section puts the endpoints in default deny."),
                    "egress": boolean("Whether the egress section puts the endpoints in default deny."),
                },
                "Per direction, whether this rule makes other traffic denied (default: yes).",
            ),
            "labels": array(
                obj(
                    {"key": string(), "value": string(), "source": string()},
                    required=["key"],
                ),
                "Labels naming the rule; the agent adds the object's own.",
            ),
            "description": string("Free text explaining the rule."),
        }
    )
    return obj(properties, "One policy rule.", required=required, rules=rules)


def policy_status():
    return obj(
        {
            "nodes": {
                "type": "object",
                "description": "Per node name: how that node's agent took the policy.",
                "additionalProperties": obj(
                    {
                        "enforcing": boolean("Whether the policy is enforced on the node."),
                        "ok": boolean("Whether the node imported the policy without error."),
                        "error": string("Why the node could not import the policy."),
                        "lastUpdated": string("When the node last wrote this entry.", format="date-time"),
                        "localPolicyRevision": integer("The node's policy revision after the import.", format="int64"),
                        "annotations": string_map("The object's annotations the node saw."),
                    }
                ),
            },
            "derivativePolicies": opaque("Status of policies derived from this one, by name."),
            "conditions": array(
                obj(
                    {
                        "type": string(),
                        "status": string(enum=["True", "False", "Unknown"]),
                        "lastTransitionTime": string(format="date-time"),
                        "reason": string(),
                        "message": string(),
                    },
                    required=["type", "status"],
                ),
                "Conditions about the policy as a whole.",
            ),
        },
        "Written by the agents.",
    )


def policy_schema(clusterwide):
    kind = "CiliumClusterwideNetworkPolicy" if clusterwide else "CiliumNetworkPolicy"
    return root_schema(
        {
            "spec": rule(clusterwide),
            "specs": array(rule(clusterwide), "Several rules in one object (with or without spec)."),
            "status": policy_status(),
        },
        description=(
            "Cilium policy rules that select endpoints in all namespaces (and nodes)."
            if clusterwide
            else "Cilium policy rules for endpoints of the object's namespace."
        ),
        rules=[(
            "has(self.spec) || has(self.specs)",
            f"a {kind} needs spec or specs",
            {"fieldPath": ".spec", "reason": "FieldValueRequired"},
        )],
    )


def identity_schema():
    return root_schema(
        {
            "security-labels": string_map(
                "The labels this identity stands for, source:key to value."
            ),
        },
        description="A numeric security identity (the object's name) and its labels.",
        required=["security-labels"],
    )


def endpoint_schema():
    policy_direction = obj(
        {
            "enforcing": boolean("Whether policy is enforced in this direction."),
            "state": string("The enforcement state as the agent names it."),
        }
    )
    status = obj(
        {
            "id": integer("The endpoint's ID on its node.", format="int64"),
            "identity": obj(
                {
                    "id": integer("The numeric security identity.", format="int64"),
                    "labels": array(string(), "The identity's labels, source:key=value."),
                },
                "The endpoint's security identity.",
            ),
            "networking": obj(
                {
                    "addressing": array(
                        obj({"ipv4": string(), "ipv6": string()}),
                        "The endpoint's addresses.",
                    ),
                    "node": string("Address of the node the endpoint runs on."),
                },
                "Where the endpoint is reachable.",
                required=["addressing"],
            ),
            "named-ports": array(
                obj(
                    {
                        "name": string(),
                        "port": integer(format="int32", minimum=0, maximum=65535),
                        "protocol": string(enum=["TCP", "UDP", "SCTP"]),
                    }
                ),
                "The pod's named container ports.",
            ),
            "state": string("The endpoint's state, e.g. ready, regenerating, waiting-for-identity."),
            "policy": obj(
                {"ingress": policy_direction, "egress": policy_direction},
                "Policy enforcement per direction.",
            ),
            "encryption": obj({"key": integer("Index of the encryption key.")}, "Transparent encryption."),
        },
        "Written by the agent of the endpoint's node.",
    )
    return root_schema(
        {"status": status},
        description="A Cilium endpoint (a pod's network interface) as its agent sees it.",
    )


def node_schema():
    address_pair = obj({"ipv4": string(), "ipv6": string()})
    spec = obj(
        {
            "addresses": array(
                obj(
                    {
                        "type": string("InternalIP, ExternalIP, CiliumInternalIP, ..."),
                        "ip": string(),
                    }
                ),
                "The node's addresses.",
            ),
            "ipam": obj(
                {
                    "podCIDRs": array(string(pattern=CIDR_PATTERN), "Prefixes pod addresses come from."),
                    "pool": opaque("Addresses available for allocation (cluster-pool and cloud modes)."),
                },
                "Pod address allocation for the node.",
            ),
            "health": address_pair,
            "encryption": obj({"key": integer("Index of the encryption key.")}, "Transparent encryption."),
            "nodeidentity": integer("The node's identity.", format="int64"),
            "instance-id": string("The node's instance ID (cloud)."),
            "bootid": string("The node's boot ID."),
        },
        "Written by the node's agent.",
    )
    return root_schema(
        {
            "spec": spec,
            "status": opaque("Written by the operator (IPAM) and the agent."),
        },
        description="A node of the cluster as Cilium sees it.",
        required=["spec"],
    )


def root_schema(properties, description, required=None, rules=None):
    return obj(
        {
            "apiVersion": string(),
            "kind": string(),
            "metadata": {"type": "object"},
            **properties,
        },
        description,
        required=required,
        rules=rules,
    )


# --- the CRDs ---------------------------------------------------------------

AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def crd(plural, kind, scope, short_names, schema, status_subresource, columns):
    version = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": schema},
    }
    if status_subresource:
        version["subresources"] = {"status": {}}
    version["additionalPrinterColumns"] = columns
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "cilium"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": ["cilium"],
            },
            "scope": scope,
            "versions": [version],
        },
    }


CRDS = {
    "ciliumnetworkpolicies.yaml": crd(
        "ciliumnetworkpolicies", "CiliumNetworkPolicy", "Namespaced", ["cnp", "ciliumnp"],
        policy_schema(clusterwide=False), True, [AGE],
    ),
    "ciliumclusterwidenetworkpolicies.yaml": crd(
        "ciliumclusterwidenetworkpolicies", "CiliumClusterwideNetworkPolicy", "Cluster", ["ccnp"],
        policy_schema(clusterwide=True), True, [AGE],
    ),
    "ciliumidentities.yaml": crd(
        "ciliumidentities", "CiliumIdentity", "Cluster", ["ciliumid"],
        identity_schema(), False,
        [
            {
                "name": "Namespace",
                "type": "string",
                "description": "Namespace of the pods with this identity.",
                "jsonPath": ".metadata.labels.io\\.kubernetes\\.pod\\.namespace",
            },
            AGE,
        ],
    ),
    "ciliumendpoints.yaml": crd(
        "ciliumendpoints", "CiliumEndpoint", "Namespaced", ["cep", "ciliumep"],
        endpoint_schema(), False,
        [
            {"name": "Endpoint ID", "type": "integer", "priority": 1, "jsonPath": ".status.id"},
            {"name": "Security Identity", "type": "integer", "jsonPath": ".status.identity.id"},
            {"name": "Ingress Enforcement", "type": "boolean", "priority": 1,
             "jsonPath": ".status.policy.ingress.enforcing"},
            {"name": "Egress Enforcement", "type": "boolean", "priority": 1,
             "jsonPath": ".status.policy.egress.enforcing"},
            {"name": "Endpoint State", "type": "string", "jsonPath": ".status.state"},
            {"name": "IPv4", "type": "string", "jsonPath": ".status.networking.addressing[0].ipv4"},
            {"name": "IPv6", "type": "string", "jsonPath": ".status.networking.addressing[0].ipv6"},
        ],
    ),
    "ciliumnodes.yaml": crd(
        "ciliumnodes", "CiliumNode", "Cluster", ["cn", "ciliumn"],
        node_schema(), True,
        [
            {"name": "CiliumInternalIP", "type": "string",
             "jsonPath": '.spec.addresses[?(@.type=="CiliumInternalIP")].ip'},
            {"name": "InternalIP", "type": "string",
             "jsonPath": '.spec.addresses[?(@.type=="InternalIP")].ip'},
            AGE,
        ],
    ),
}

# --- a small YAML emitter ---------------------------------------------------

_PLAIN = re.compile(r"^[A-Za-z_/.][A-Za-z0-9 _./(),;'=+*-]*$")
_RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}


def scalar(value):
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    plain = (
        _PLAIN.match(text)
        and text.lower() not in _RESERVED
        and not text.endswith(" ")
        and " #" not in text
    )
    return text if plain else json.dumps(text)


def emit(value, indent=0):
    pad = " " * indent
    lines = []
    if isinstance(value, dict):
        for key, item in value.items():
            lines.extend(_entry(f"{pad}{scalar(key)}:", item, indent))
    else:
        for item in value:
            if isinstance(item, dict) and item:
                inner = emit(item, indent + 2)
                lines.append(f"{pad}- {inner[0].lstrip()}")
                lines.extend(inner[1:])
            else:
                lines.extend(_entry(f"{pad}-", item, indent))
    return lines


def _entry(head, item, indent):
    if isinstance(item, dict) and item:
        return [head] + emit(item, indent + 2)
    if isinstance(item, list) and item:
        # Lists under a key are indented like kubectl writes them.
        return [head] + emit(item, indent + 2)
    if isinstance(item, dict):
        return [f"{head} {{}}"]
    if isinstance(item, list):
        return [f"{head} []"]
    return [f"{head} {scalar(item)}"]


def render(document):
    header = (
        "# Generated by install/kubernetes/gen-crds.py: edit that script and run it,\n"
        "# not this file.\n"
    )
    return header + "\n".join(emit(document)) + "\n"


def main(argv):
    check = argv[1:] == ["--check"]
    if argv[1:] and not check:
        sys.exit(f"usage: {argv[0]} [--check]")
    stale = []
    for name, document in CRDS.items():
        path = OUT / name
        text = render(document)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            OUT.mkdir(exist_ok=True)
            path.write_text(text)
    if stale:
        sys.exit("out of date (run install/kubernetes/gen-crds.py): " + ", ".join(stale))


if __name__ == "__main__":
    main(sys.argv)
