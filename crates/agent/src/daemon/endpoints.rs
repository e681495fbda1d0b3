//! Endpoint lifecycle: create, relabel, delete. Kernel work that can fail
//! comes first; a failure undoes what was done, so nothing is half-applied.

use std::net::{Ipv4Addr, Ipv6Addr};

use api::models::{Endpoint, EndpointChangeRequest, LabelConfigurationSpec};
use datapath::{endpoint::remove_endpoint, maps::EndpointInfo, EndpointProgram};
use policy::Labels;

use super::{Daemon, Inner};
use crate::{
    endpoint::{parse_mac, EndpointRecord},
    error::AgentError,
    netdev,
};

pub(super) fn lxc_info(ep: &EndpointRecord) -> EndpointInfo {
    EndpointInfo {
        ifindex: ep.interface_index,
        lxc_id: ep.id,
        flags: 0,
        mac: ep.mac,
        node_mac: ep.host_mac,
        sec_id: ep.identity,
    }
}

fn bad(msg: impl Into<String>) -> AgentError {
    AgentError::BadRequest(msg.into())
}

const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// The label every Kubernetes namespace carries, seen on its pods.
const NAMESPACE_NAME: &str = "io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name";

fn parse_labels(labels: &[String]) -> Result<Labels, AgentError> {
    for (i, text) in labels.iter().enumerate() {
        text.parse::<policy::Label>()
            .map_err(|e| bad(format!("labels[{i}] {text:?}: {e}")))?;
    }
    let mut labels = Labels::parse_all(labels).map_err(|e| bad(format!("labels: {e}")))?;
    add_namespace_name(&mut labels);
    Ok(labels)
}

/// Without an API server the namespace's automatic name label is still
/// known: a pod's namespace gives it, so that namespaceSelector
/// `kubernetes.io/metadata.name: X` selects the pod.
pub(super) fn add_namespace_name(labels: &mut Labels) {
    let namespace = labels
        .iter()
        .find(|l| l.source == "k8s" && l.key == POD_NAMESPACE)
        .map(|l| l.value.clone());
    if let Some(ns) = namespace {
        labels.insert(policy::Label::new("k8s", NAMESPACE_NAME, ns));
    }
}

/// How long a CNI ADD waits for its pod to arrive through the watch.
const POD_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// `labels` with every `k8s:` label replaced by the API server's.
fn with_pod_labels(labels: &Labels, k8s: Vec<policy::Label>) -> Labels {
    labels
        .iter()
        .filter(|l| l.source != policy::labels::SOURCE_K8S)
        .cloned()
        .chain(k8s)
        .collect()
}

/// Everything in a change request that can be checked without the lock.
fn validate(req: &EndpointChangeRequest) -> Result<EndpointRecord, AgentError> {
    let ifname = req
        .interface_name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad("interface-name: required (the host-side interface of the endpoint)"))?;
    let ifindex = netdev::ifindex(&ifname).ok_or_else(|| {
        bad(format!(
            "interface-name: no interface {ifname:?} on this node"
        ))
    })?;
    if req.interface_index != 0 && req.interface_index != ifindex as i64 {
        return Err(bad(format!(
            "interface-index: {} does not match {ifname:?} (index {ifindex})",
            req.interface_index
        )));
    }
    let ipv4 = match req.addressing.ipv4.as_deref().filter(|a| !a.is_empty()) {
        Some(text) => Some(
            text.parse::<Ipv4Addr>()
                .map_err(|_| bad(format!("addressing.ipv4: {text:?} is not an IPv4 address")))?,
        ),
        None => None,
    };
    let ipv6 = match req.addressing.ipv6.as_deref().filter(|a| !a.is_empty()) {
        Some(text) => Some(
            text.parse::<Ipv6Addr>()
                .map_err(|_| bad(format!("addressing.ipv6: {text:?} is not an IPv6 address")))?,
        ),
        None => None,
    };
    if ipv4.is_none() && ipv6.is_none() {
        return Err(bad("addressing: an IPv4 or an IPv6 address is required"));
    }
    let mac = req
        .mac
        .as_deref()
        .ok_or_else(|| bad("mac: required (the container-side MAC address)"))?;
    let mac = parse_mac(mac).ok_or_else(|| bad(format!("mac: {mac:?} is not a MAC address")))?;
    let host_mac = match req.host_mac.as_deref() {
        Some(m) => {
            parse_mac(m).ok_or_else(|| bad(format!("host-mac: {m:?} is not a MAC address")))?
        }
        None => netdev::mac(&ifname)
            .ok_or_else(|| bad(format!("host-mac: cannot read the MAC of {ifname:?}")))?,
    };
    Ok(EndpointRecord {
        id: req.id.unwrap_or(0),
        container_id: req.container_id.clone().unwrap_or_default(),
        container_name: req.container_name.clone().unwrap_or_default(),
        pod_name: match (&req.k8s_namespace, &req.k8s_pod_name) {
            (Some(ns), Some(pod)) => format!("{ns}/{pod}"),
            _ => String::new(),
        },
        interface_name: ifname,
        interface_index: ifindex,
        mac,
        host_mac,
        ipv4,
        ipv6,
        netns: req.netns.clone().unwrap_or_default(),
        labels: parse_labels(&req.labels)?,
        identity: 0,
        policy_revision: 0,
        ingress_enforced: false,
        egress_enforced: false,
        named_ports: crate::endpoint::parse_named_ports(&req.named_ports).map_err(bad)?,
    })
}

impl Daemon {
    pub async fn endpoint_create(
        &self,
        id: &str,
        req: EndpointChangeRequest,
    ) -> Result<Endpoint, AgentError> {
        let path_id: u16 = id.parse().map_err(|_| {
            bad(format!(
                "endpoint id {id:?} must be a number from 0 to 65535"
            ))
        })?;
        if let Some(body_id) = req.id.filter(|b| *b != 0 && *b != path_id && path_id != 0) {
            return Err(bad(format!(
                "id: {body_id} in the body differs from {path_id} in the path"
            )));
        }
        let mut ep = validate(&req)?;
        self.take_pod_labels(&mut ep).await;
        let (identity, _) = self
            .cluster
            .identities
            .allocate(&ep.labels)
            .await
            .map_err(|e| {
                AgentError::Internal(format!("allocating an identity for {}: {e}", ep.labels))
            })?;
        ep.identity = identity.id;
        let created = self.create_locked(path_id, &mut ep, &identity);
        match created {
            Ok(()) => {
                self.publish_endpoint_ip(&ep);
                self.catch_up_pod_labels(&ep).await;
                Ok(ep.to_model(&identity.labels))
            }
            Err(e) => {
                let _ = self.cluster.identities.release(identity.id).await;
                Err(e)
            }
        }
    }

    fn create_locked(
        &self,
        path_id: u16,
        ep: &mut EndpointRecord,
        identity: &identity::Identity,
    ) -> Result<(), AgentError> {
        let mut inner = self.lock();
        ep.id = match (path_id, ep.id) {
            (0, 0) => free_id(&inner)?,
            (0, body) | (body, _) => body,
        };
        if inner.endpoints.contains_key(&ep.id) {
            return Err(AgentError::Conflict(format!(
                "endpoint {} already exists",
                ep.id
            )));
        }
        if let Some(other) = inner
            .endpoints
            .values()
            .find(|o| o.interface_name == ep.interface_name)
        {
            return Err(AgentError::Conflict(format!(
                "interface {} already belongs to endpoint {}",
                ep.interface_name, other.id
            )));
        }
        self.claim_addresses(&mut inner, ep)?;

        let created = inner.identities.insert(identity.clone());
        if let Err(e) = self.install(&mut inner, ep, created) {
            inner.policies.remove(&ep.id);
            inner.proxy_ports.release_endpoint(ep.id);
            if created {
                let _ = self.identity_removed(&inner, ep.identity, &ep.labels);
                inner.identities.remove(ep.identity);
            }
            let _ = remove_endpoint(&self.root, ep.id);
            let _ = self.remove_addresses(&mut inner, ep, false, true);
            return Err(e);
        }
        inner.endpoints.insert(ep.id, ep.clone());
        self.refresh_peer_ports(&mut inner);
        self.persist_endpoints(&inner)
    }

    /// Attaches the programs, writes the endpoint's policy, makes a new
    /// identity known to the other endpoints' maps, and only then publishes
    /// the endpoint in lxc and ipcache so that traffic can reach it.
    fn install(
        &self,
        inner: &mut Inner,
        ep: &mut EndpointRecord,
        new_identity: bool,
    ) -> Result<(), AgentError> {
        let config = self.endpoint_config(inner, ep);
        let mut prog = EndpointProgram::load_with(&self.root, ep.id, &config)?;
        prog.attach(&self.root, &ep.interface_name)?;
        let policy = self.compile_endpoint(inner, ep)?;
        super::regenerate::regenerate(
            &self.root,
            &policy,
            inner.repo.revision(),
            &mut policy::SelectorCache::new(inner.all_identities()),
            ep,
        )?;
        inner.policies.insert(ep.id, policy);
        if new_identity {
            self.identity_added(inner, ep.identity, &ep.labels)?;
        }
        self.install_addresses(inner, ep)?;
        self.publish_proxy_state(inner);
        Ok(())
    }

    /// The identity stays known (other nodes may use it) until the
    /// cluster's garbage collection removes it.
    pub async fn endpoint_delete(&self, id: &str) -> Result<(), AgentError> {
        let ep = {
            let mut inner = self.lock();
            let num = find(&inner, id)?;
            let ep = inner.endpoints.remove(&num).expect("found above");
            inner.policies.remove(&num);
            inner.proxy_ports.release_endpoint(num);
            self.publish_proxy_state(&inner);
            remove_endpoint(&self.root, num)?;
            self.remove_addresses(&mut inner, &ep, true, false)?;
            self.refresh_peer_ports(&mut inner);
            // Its DNS answers go with it; IPs only it learned lose their
            // FQDN identities.
            inner.fqdn.forget_endpoint(num);
            inner.fqdn_dirty = true;
            let changes = self.update_fqdn_identities(&mut inner, None)?;
            self.apply_fqdn_changes(&mut inner, changes, true)?;
            self.persist_endpoints(&inner)?;
            ep
        };
        self.unpublish_endpoint_ip(&ep);
        self.cluster
            .identities
            .release(ep.identity)
            .await
            .map_err(|e| {
                AgentError::Internal(format!("releasing identity {}: {e}", ep.identity))
            })?;
        Ok(())
    }

    pub fn endpoint_get(&self, id: &str) -> Result<Endpoint, AgentError> {
        let inner = self.lock();
        let num = find(&inner, id)?;
        Ok(model(&inner, &inner.endpoints[&num]))
    }

    pub fn endpoint_list(&self) -> Vec<Endpoint> {
        let inner = self.lock();
        inner
            .endpoints
            .values()
            .map(|ep| model(&inner, ep))
            .collect()
    }

    /// Replaces the endpoint's labels: it moves to the identity of the new
    /// label set and every policy map follows at once.
    pub async fn endpoint_set_labels(
        &self,
        id: &str,
        spec: LabelConfigurationSpec,
    ) -> Result<(), AgentError> {
        let labels = parse_labels(&spec.user)?;
        let num = find(&self.lock(), id)?;
        let (identity, _) = self
            .cluster
            .identities
            .allocate(&labels)
            .await
            .map_err(|e| {
                AgentError::Internal(format!("allocating an identity for {labels}: {e}"))
            })?;
        let relabelled = self.relabel_locked(num, labels, &identity);
        let old = match relabelled {
            Ok(old) => old,
            Err(e) => {
                let _ = self.cluster.identities.release(identity.id).await;
                return Err(e);
            }
        };
        let _ = self.cluster.identities.release(old).await;
        Ok(())
    }

    /// In Kubernetes mode, a pod's endpoint gets its identity labels from
    /// the API server: the pod's, its namespace's, its service account's
    /// (whatever `k8s:` labels the plugin sent are replaced). A pod the
    /// watch has not brought within the wait keeps the plugin's labels and
    /// is relabelled when it arrives.
    async fn take_pod_labels(&self, ep: &mut EndpointRecord) {
        let (Some(k8s), Some((namespace, name))) = (&self.k8s, ep.pod_name.split_once('/')) else {
            return;
        };
        let key = k8s::PodKey {
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        match k8s.pods.wait_labels(&key, POD_WAIT).await {
            Some(labels) => {
                ep.labels = with_pod_labels(&ep.labels, labels);
                // The pod spec's port names (fixed for a pod's life). The
                // first container naming a port wins, as for Kubernetes.
                for port in k8s.pods.named_ports(&key).unwrap_or_default() {
                    if let Ok(named) = crate::endpoint::parse_named_ports(&[port]) {
                        for (name, port) in named {
                            ep.named_ports.entry(name).or_insert(port);
                        }
                    }
                }
            }
            None => eprintln!(
                "level=warning msg=\"endpoint for pod {key}: the pod is not known from the API server yet; using the plugin's labels until it is\""
            ),
        }
    }

    /// A pod relabelled while its endpoint was being created found no
    /// endpoint to move: move it now.
    async fn catch_up_pod_labels(&self, ep: &EndpointRecord) {
        let (Some(k8s), Some((namespace, name))) = (&self.k8s, ep.pod_name.split_once('/')) else {
            return;
        };
        let key = k8s::PodKey {
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        if let Some(labels) = k8s.pods.labels(&key) {
            if with_pod_labels(&ep.labels, labels.clone()) != ep.labels {
                if let Err(e) = self.endpoint_relabel_pod(&ep.pod_name, labels).await {
                    eprintln!("level=warning msg=\"relabelling pod {key}: {e}\"");
                }
            }
        }
    }

    /// Moves the endpoints of `pod` (`namespace/name`) to the identity of
    /// the pod's current labels.
    pub async fn endpoint_relabel_pod(
        &self,
        pod: &str,
        labels: Vec<policy::Label>,
    ) -> Result<(), AgentError> {
        let endpoints: Vec<(u16, Labels)> = self
            .lock()
            .endpoints
            .values()
            .filter(|ep| ep.pod_name == pod)
            .map(|ep| (ep.id, with_pod_labels(&ep.labels, labels.clone())))
            .collect();
        for (id, labels) in endpoints {
            let current = self.lock().endpoints.get(&id).map(|ep| ep.labels.clone());
            if current.as_ref() == Some(&labels) {
                continue;
            }
            self.endpoint_set_labels(
                &id.to_string(),
                LabelConfigurationSpec {
                    user: labels.to_strings(),
                },
            )
            .await?;
        }
        Ok(())
    }

    /// Moves endpoint `num` to `identity`; returns its previous identity.
    fn relabel_locked(
        &self,
        num: u16,
        labels: Labels,
        identity: &identity::Identity,
    ) -> Result<u32, AgentError> {
        let mut inner = self.lock();
        let old = inner
            .endpoints
            .get(&num)
            .cloned()
            .ok_or_else(|| AgentError::NotFound(format!("endpoint {num} not found")))?;
        if inner.identities.insert(identity.clone()) {
            self.identity_added(&inner, identity.id, &labels)?;
        }
        let mut ep = old.clone();
        ep.labels = labels;
        ep.identity = identity.id;
        let policy = self.compile_endpoint(&mut inner, &ep)?;
        super::regenerate::regenerate(
            &self.root,
            &policy,
            inner.repo.revision(),
            &mut policy::SelectorCache::new(inner.all_identities()),
            &mut ep,
        )?;
        inner.policies.insert(num, policy);
        self.install_addresses(&mut inner, &ep)?;
        self.publish_endpoint_ip(&ep);
        inner.endpoints.insert(num, ep);
        self.refresh_peer_ports(&mut inner);
        self.publish_proxy_state(&inner);
        self.persist_endpoints(&inner)?;
        Ok(old.identity)
    }
}

fn model(inner: &Inner, ep: &EndpointRecord) -> Endpoint {
    let labels = inner
        .identities
        .get(ep.identity)
        .map(|i| i.labels.clone())
        .unwrap_or_default();
    ep.to_model(&labels)
}

/// Endpoint by numeric id or `container-id:ID`.
fn find(inner: &Inner, id: &str) -> Result<u16, AgentError> {
    let not_found = || AgentError::NotFound(format!("endpoint {id} not found"));
    if let Some(cid) = id.strip_prefix("container-id:") {
        return inner
            .endpoints
            .values()
            .find(|ep| ep.container_id == cid)
            .map(|ep| ep.id)
            .ok_or_else(not_found);
    }
    let num: u16 = id.parse().map_err(|_| {
        bad(format!(
            "endpoint id {id:?} must be a number or container-id:ID"
        ))
    })?;
    inner
        .endpoints
        .contains_key(&num)
        .then_some(num)
        .ok_or_else(not_found)
}

fn free_id(inner: &Inner) -> Result<u16, AgentError> {
    (1..=u16::MAX)
        .find(|id| !inner.endpoints.contains_key(id))
        .ok_or_else(|| AgentError::Internal("no free endpoint id".into()))
}
