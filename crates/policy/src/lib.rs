//! Cilium's L3/L4 policy core: labels, endpoint selectors, the rule language
//! (Cilium rules, CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy
//! objects, Kubernetes NetworkPolicy), CIDR identities, DNS-name (FQDN)
//! selectors and the identities of learned IPs, the policy repository,
//! resolution of the rules selecting an endpoint into the desired contents of
//! its policy map (LPM keys with port prefixes and deny precedence), the
//! datapath's lookup on that map, and per-identity incremental updates.
//!
//! This crate is pure computation. It must never do IO, touch the kernel, spawn
//! tasks or keep global state: callers hand in text, rules, labels and
//! identities, and get values back.

pub mod attribution;
pub mod cidr;
pub mod cidr_v6;
mod cnp;
pub mod entities;
pub mod fqdn;
mod k8s;
pub mod l7;
pub mod labels;
pub mod lookup;
pub mod mapstate;
pub mod parse;
pub mod policy_labels;
pub mod ports;
pub mod repository;
pub mod reserved;
pub mod resolve;
pub mod rule;
pub mod selector;
mod validate;

pub use cidr::{
    cidr_identity_labels, cidr_identity_labels6, cidr_prefixes, cidr_prefixes6, rule_prefixes,
    Cidr, CidrRule, Ipv4Cidr, Ipv6Cidr,
};
pub use entities::Entity;
pub use fqdn::{fqdn_identity_labels, fqdn_selectors, FqdnSelector};
pub use l7::{HttpRule, KafkaRole, KafkaRule, L7Rules};
pub use labels::{Label, LabelError, Labels};
pub use lookup::{lookup, MatchType, Verdict};
pub use mapstate::{diff, Direction, MapEntry, MapKey, MapState};
pub use parse::{parse_rules, PolicyError};
pub use ports::{IcmpField, IcmpRule, PortProtocol, PortRule, Protocol};
pub use repository::Repository;
pub use resolve::{
    identity_delta, resolve, CompiledRules, EndpointPolicy, L7Parser, Listener, Redirect,
    RedirectPeer, Resolved, SelectorCache,
};
pub use rule::{DefaultDeny, EgressRule, IngressRule, Rule};
pub use selector::{EndpointSelector, LabelSelectorRequirement, SelectorOperator};
pub use validate::RuleError;
