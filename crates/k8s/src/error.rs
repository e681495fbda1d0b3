//! What can go wrong talking to the API server.

#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error("no Kubernetes configuration: {0}")]
    NoConfig(String),
    #[error("Kubernetes API: {0}")]
    Api(#[from] kube::Error),
    #[error("identity: {0}")]
    Identity(String),
    #[error("CRD {name}: {message}")]
    Crd { name: String, message: String },
}
