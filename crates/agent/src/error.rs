//! Errors the API reports, each mapped to its HTTP status.

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The request is malformed or invalid: 400.
    #[error("{0}")]
    BadRequest(String),
    /// The named object does not exist: 404.
    #[error("{0}")]
    NotFound(String),
    /// The object exists already: 409.
    #[error("{0}")]
    Conflict(String),
    /// The agent failed to carry out a valid request: 500.
    #[error("{0}")]
    Internal(String),
}

impl AgentError {
    pub fn status(&self) -> u16 {
        match self {
            AgentError::BadRequest(_) => 400,
            AgentError::NotFound(_) => 404,
            AgentError::Conflict(_) => 409,
            AgentError::Internal(_) => 500,
        }
    }
}

impl From<datapath::DatapathError> for AgentError {
    fn from(e: datapath::DatapathError) -> Self {
        AgentError::Internal(format!("datapath: {e}"))
    }
}

impl From<crate::state::StateError> for AgentError {
    fn from(e: crate::state::StateError) -> Self {
        AgentError::Internal(e.to_string())
    }
}

impl From<identity::IdentityError> for AgentError {
    fn from(e: identity::IdentityError) -> Self {
        AgentError::Internal(format!("identity: {e}"))
    }
}
