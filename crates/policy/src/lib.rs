//! Cilium's L3/L4 policy core: labels, endpoint selectors, the rule language,
//! the policy repository, and resolution of the rules selecting an endpoint into
//! the desired contents of its policy map (plus the diff to what is installed).
//!
//! This crate is pure computation. It must never do IO, touch the kernel, spawn
//! tasks or keep global state: callers hand in text, rules, labels and
//! identities, and get values back.

pub mod labels;
pub mod mapstate;
pub mod parse;
pub mod repository;
pub mod reserved;
pub mod resolve;
pub mod rule;
pub mod selector;
mod validate;

pub use labels::{Label, LabelError, Labels};
pub use mapstate::{diff, Direction, MapEntry, MapKey, MapState};
pub use parse::{parse_rules, PolicyError};
pub use repository::Repository;
pub use resolve::{resolve, Resolved};
pub use rule::{EgressRule, IngressRule, PortProtocol, PortRule, Protocol, Rule};
pub use selector::{EndpointSelector, LabelSelectorRequirement, SelectorOperator};
pub use validate::RuleError;
