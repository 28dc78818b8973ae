//! The shape of the Pod: many unrelated services in one Pod ("pod as a VM").

use crate::lint::Hit;
use crate::lint::pod::{Kind, Pod};

/// More regular containers than this (sidecars left out) is a VM, not a Pod.
const MAX_CONTAINERS: usize = 4;
/// This many containers serving ports, none waiting for another, are unrelated services.
const UNRELATED_SERVERS: usize = 3;

/// `pod-as-vm`.
pub fn pod_as_vm(pod: &Pod) -> Vec<Hit> {
    // A mesh proxy, an exporter or a log shipper serves the container next to it: it
    // belongs with it and is no service of its own.
    let regular: Vec<_> = pod
        .containers
        .iter()
        .filter(|c| c.kind == Kind::Regular && !pod.is_sidecar(c) && !c.looks_like_sidecar())
        .collect();
    let servers: Vec<&str> = regular
        .iter()
        .filter(|c| c.value["ports"].as_array().is_some_and(|p| !p.is_empty()))
        .map(|c| c.name.as_str())
        .collect();
    let ordered = regular
        .iter()
        .any(|c| c.run.as_ref().is_some_and(|r| !r.wait_for.is_empty()));
    let why = if regular.len() > MAX_CONTAINERS {
        format!(
            "{} regular containers (more than {MAX_CONTAINERS})",
            regular.len()
        )
    } else if servers.len() >= UNRELATED_SERVERS && !ordered {
        format!(
            "{} containers serving ports ({}) and none waits for another",
            servers.len(),
            servers.join(", ")
        )
    } else {
        return Vec::new();
    };
    vec![Hit {
        order: 0,
        path: pod.workload.path("/spec/containers"),
        message: format!(
            "{why}: services that scale, deploy and fail on their own belong in their own Deployments (a Pod is scheduled, scaled and restarted as one); keep in one Pod only containers that serve each other"
        ),
    }]
}
