//! The Cilium CRDs, shipped in `install/kubernetes/crds/` and installed (or
//! brought up to date) by the agent at start, so a cluster needs no other
//! installer step before policies can be applied.

use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;

use crate::K8sError;

macro_rules! crd {
    ($file:literal) => {
        (
            $file,
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../install/kubernetes/crds/",
                $file
            )),
        )
    };
}

/// `(file, YAML)` of every CRD the agent owns.
pub const CRDS: &[(&str, &str)] = &[
    crd!("ciliumnetworkpolicies.yaml"),
    crd!("ciliumclusterwidenetworkpolicies.yaml"),
    crd!("ciliumidentities.yaml"),
    crd!("ciliumendpoints.yaml"),
    crd!("ciliumnodes.yaml"),
];

const FIELD_MANAGER: &str = "cilium-agent";
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// The shipped CRDs, parsed.
pub fn definitions() -> Result<Vec<CustomResourceDefinition>, K8sError> {
    CRDS.iter()
        .map(|(file, yaml)| {
            serde_yaml::from_str(yaml).map_err(|e| K8sError::Crd {
                name: file.to_string(),
                message: e.to_string(),
            })
        })
        .collect()
}

/// Creates or updates every CRD (server-side apply, so fields others set
/// are kept) and waits until the API server serves them.
pub async fn install(client: &Client) -> Result<(), K8sError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let definitions = definitions()?;
    for crd in &definitions {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &params, &Patch::Apply(crd)).await?;
    }
    for crd in &definitions {
        let name = crd.metadata.name.clone().unwrap_or_default();
        wait_established(&api, &name).await?;
    }
    Ok(())
}

async fn wait_established(api: &Api<CustomResourceDefinition>, name: &str) -> Result<(), K8sError> {
    let deadline = Instant::now() + ESTABLISH_TIMEOUT;
    loop {
        let crd = api.get(name).await?;
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "Established" && c.status == "True");
        if established {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(K8sError::Crd {
                name: name.to_string(),
                message: format!("not established after {ESTABLISH_TIMEOUT:?}"),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_shipped_crd_parses_and_is_cilium_v2() {
        let definitions = super::definitions().unwrap();
        assert_eq!(definitions.len(), super::CRDS.len());
        for crd in definitions {
            assert_eq!(crd.spec.group, "cilium.io");
            assert!(crd
                .spec
                .versions
                .iter()
                .any(|v| v.name == "v2" && v.storage));
        }
    }
}
