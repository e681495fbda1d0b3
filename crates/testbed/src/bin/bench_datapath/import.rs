//! Time from `cilium policy import` of the rule set to enforcement: every
//! target endpoint reports the new policy revision AND a probe connection
//! the new rules allow (denied before) completes its handshake.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use testbed::bench::measure::handshake;
use testbed::bench::policy_import;
use testbed::bench::signals;
use testbed::{Agent, Pod};

use crate::policies::{IMPORT_LABEL, PROBE_PORT};

const ENFORCE_TIMEOUT: Duration = Duration::from_secs(60);
/// A dropped SYN is noticed after this long; the next attempt follows.
const PROBE_ATTEMPT: Duration = Duration::from_millis(10);
const DENIED_CHECK: Duration = Duration::from_millis(300);

/// Milestones of one import, measured from just before the CLI starts.
#[derive(Debug, Clone, Copy)]
pub struct ImportTiming {
    /// `cilium policy import` returned (the agent answers once every
    /// endpoint's map is written).
    pub cli_returned: Duration,
    /// Every target endpoint reports the new revision.
    pub revisions: Duration,
    /// ... and the probe's handshake completes: enforced.
    pub enforced: Duration,
}

pub struct ImportBench<'a> {
    pub agent: &'a Agent,
    pub client: &'a Pod,
    pub probe: &'a Pod,
    /// Endpoint ids that the imported rules select (the probe among them).
    pub targets: BTreeSet<u16>,
    pub rules_file: &'a Path,
}

impl ImportBench<'_> {
    /// Imports the rules, waits for enforcement. The rules stay loaded.
    pub fn import_once(&self) -> Result<ImportTiming> {
        self.expect_probe_denied("before the import")?;
        let start = Instant::now();
        let revision = policy_import::import_file(self.agent, self.rules_file)?;
        let cli_returned = start.elapsed();

        let client = self.agent.client();
        loop {
            signals::check()?;
            let endpoints = client.endpoint_list().context("GET /v1/endpoint")?;
            let behind = endpoints
                .iter()
                .filter(|ep| self.targets.contains(&ep.id))
                .filter(|ep| ep.status.policy.realized.policy_revision < revision)
                .count();
            let seen = endpoints
                .iter()
                .filter(|ep| self.targets.contains(&ep.id))
                .count();
            if seen != self.targets.len() {
                bail!(
                    "only {seen} of the {} target endpoints are listed",
                    self.targets.len()
                );
            }
            if behind == 0 {
                break;
            }
            self.check_timeout(
                start,
                &format!("{behind} endpoints below revision {revision}"),
            )?;
        }
        let revisions = start.elapsed();

        let client_ns = self.client.namespace();
        while !handshake(client_ns, self.probe.ip(), PROBE_PORT, PROBE_ATTEMPT)? {
            signals::check()?;
            self.check_timeout(start, "the probe connection is still dropped")?;
        }
        Ok(ImportTiming {
            cli_returned,
            revisions,
            enforced: start.elapsed(),
        })
    }

    /// Deletes the imported rules and waits until the probe is denied again.
    pub fn remove(&self) -> Result<()> {
        self.agent
            .client()
            .policy_delete(&[IMPORT_LABEL.to_string()])
            .context("deleting the imported rules")?;
        let start = Instant::now();
        while handshake(
            self.client.namespace(),
            self.probe.ip(),
            PROBE_PORT,
            DENIED_CHECK,
        )? {
            signals::check()?;
            self.check_timeout(start, "the probe still passes after deleting the rules")?;
        }
        Ok(())
    }

    fn expect_probe_denied(&self, when: &str) -> Result<()> {
        if handshake(
            self.client.namespace(),
            self.probe.ip(),
            PROBE_PORT,
            DENIED_CHECK,
        )? {
            bail!("the probe {}:{PROBE_PORT} is reachable {when}: the steady-state policy should deny the client", self.probe.ip());
        }
        Ok(())
    }

    fn check_timeout(&self, start: Instant, what: &str) -> Result<()> {
        if start.elapsed() > ENFORCE_TIMEOUT {
            bail!("not enforced {ENFORCE_TIMEOUT:?} after the import: {what}");
        }
        Ok(())
    }
}
