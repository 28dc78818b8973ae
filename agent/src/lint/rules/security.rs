//! Who may do what: shared volumes with mixed UIDs, sidecars' limits and privileges, image
//! tags, the volume `podsignal install` writes the binary into.

use serde_json::Value;

use super::on;
use crate::lint::Hit;
use crate::lint::pod::{Container, Pod};

/// The container's mount of volume `name`, if any.
fn mount<'v>(c: &'v Container, name: &str) -> Option<&'v Value> {
    c.value["volumeMounts"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == name)
}

fn writable(m: &Value) -> bool {
    m["readOnly"] != true
}

/// Whether podsignal in this container creates files group- or world-writable.
fn shares_access(c: &Container) -> bool {
    let flag = c.podsignal.as_ref().and_then(|inv| inv.value("access"));
    matches!(
        flag.or_else(|| c.env("PODSIGNAL_ACCESS")),
        Some("group" | "all")
    )
}

/// `shared-volume-mixed-users`.
pub fn mixed_users(pod: &Pod) -> Vec<Hit> {
    if !pod.spec["securityContext"]["fsGroup"].is_null() {
        return Vec::new();
    }
    let mut hits = Vec::new();
    for (vi, volume) in pod.spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = volume["name"].as_str().unwrap_or("");
        let writers: Vec<&Container> = pod
            .containers
            .iter()
            .filter(|c| mount(c, name).is_some_and(writable))
            .collect();
        let uid = |c: &Container| c.security(pod, "runAsUser").and_then(Value::as_i64);
        let mut uids: Vec<Option<i64>> = writers.iter().map(|c| uid(c)).collect();
        uids.sort_unstable();
        uids.dedup();
        if writers.len() < 2 || uids.len() < 2 || writers.iter().all(|c| shares_access(c)) {
            continue;
        }
        let who: Vec<String> = writers
            .iter()
            .map(|c| match uid(c) {
                Some(u) => format!("{} as {u}", c.name),
                None => format!("{} as the image's user", c.name),
            })
            .collect();
        hits.push(Hit {
            order: 0,
            path: format!("{} ({name})", pod.workload.path(&format!("/spec/volumes/{vi}"))),
            message: format!(
                "volume {name:?} is written by containers running as different users ({}) with no pod fsGroup: files one creates the others cannot write; set spec.securityContext.fsGroup (and `--access group`), or `--access all` (PODSIGNAL_ACCESS=all) in every writer",
                who.join(", ")
            ),
        });
    }
    hits
}

/// `sidecar-without-limits`.
pub fn sidecar_limits(pod: &Pod) -> Vec<Hit> {
    pod.containers
        .iter()
        .enumerate()
        .filter(|(_, c)| pod.is_sidecar(c) && c.value["resources"]["limits"]["memory"].is_null())
        .map(|(i, c)| {
            on(
                i,
                c,
                "this sidecar has no memory limit: a leak in it takes memory from the app's node share and gets the whole Pod evicted; set resources.limits.memory (and requests)",
            )
        })
        .collect()
}

/// `privileged-or-root-sidecar`.
pub fn root_sidecar(pod: &Pod) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, c) in pod.containers.iter().enumerate() {
        if !pod.is_sidecar(c) {
            continue;
        }
        let uid = c.security(pod, "runAsUser").and_then(Value::as_i64);
        let non_root = c.security(pod, "runAsNonRoot") == Some(&Value::Bool(true));
        let why = if c.value["securityContext"]["privileged"] == true {
            "is privileged (privileged: true)"
        } else if uid == Some(0) {
            "runs as root (runAsUser: 0)"
        } else if uid.is_none() && !non_root {
            "may run as root (no runAsUser, runAsNonRoot not true)"
        } else {
            continue;
        };
        hits.push(on(
            i,
            c,
            format!(
                "this sidecar {why}: it shares the Pod's network and volumes with the app, so a compromise reaches them all; run it as non-root (runAsNonRoot: true, runAsUser) without privileged, and grant only the capabilities it needs"
            ),
        ));
    }
    hits
}

/// The image's tag, `None` for none; `Some("")` stands for a digest (pinned).
fn tag(image: &str) -> Option<&str> {
    if image.contains('@') {
        return Some("");
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split_once(':').map(|(_, t)| t)
}

/// `latest-tag`. A template placeholder (`$(IMAGE)`, `${IMAGE}`, `{{ .Values.image }}`)
/// is no image yet.
pub fn latest_tag(pod: &Pod) -> Vec<Hit> {
    let protocol = if pod.containers.iter().any(|c| !c.calls.is_empty()) {
        ", and podsignal's protocol between them too"
    } else {
        ""
    };
    pod.containers
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let image = c.value["image"]
                .as_str()
                .filter(|s| !s.is_empty())
                .filter(|s| !["$(", "${", "{{"].iter().any(|p| s.contains(p)))?;
            let why = match tag(image) {
                None => "has no tag (:latest)",
                Some("latest") => "is :latest",
                Some(_) => return None,
            };
            Some(on(
                i,
                c,
                format!(
                    "image {image:?} {why}: containers of one Pod may run different versions after a restart{protocol}; pin a tag or a digest"
                ),
            ))
        })
        .collect()
}

/// `podsignal-binary-volume`.
pub fn binary_volume(pod: &Pod) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, c) in pod.containers.iter().enumerate() {
        let Some(dest) = c.runs("install").and_then(|inv| inv.positional.first()) else {
            continue;
        };
        let target = c.value["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| {
                m["mountPath"]
                    .as_str()
                    .is_some_and(|p| dest.starts_with(p.trim_end_matches('/')))
            })
            .max_by_key(|m| m["mountPath"].as_str().map_or(0, str::len));
        let Some(name) = target.and_then(|m| m["name"].as_str()) else {
            continue;
        };
        let volume = pod.spec["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == name);
        if let Some(v) = volume.filter(|v| v.get("emptyDir").is_none()) {
            let kind = v
                .as_object()
                .and_then(|o| o.keys().find(|k| *k != "name"))
                .map_or("non-emptyDir", String::as_str);
            hits.push(on(
                i,
                c,
                format!(
                    "`podsignal install {dest}` writes into volume {name:?}, a {kind} volume: configMap, secret, projected and image volumes are read-only (and their files not executable), others may be noexec or shared; use an emptyDir"
                ),
            ));
        }
        for (j, other) in pod.containers.iter().enumerate() {
            if j != i && mount(other, name).is_some_and(writable) {
                hits.push(on(
                    j,
                    other,
                    format!(
                        "mounts the podsignal binary volume {name:?} writable: this container could replace the binary every other one executes; add readOnly: true"
                    ),
                ));
            }
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::tag;

    #[test]
    fn tags_are_read_after_the_last_slash_and_digests_pin() {
        assert_eq!(tag("nginx"), None);
        assert_eq!(tag("localhost:5000/app"), None);
        assert_eq!(tag("localhost:5000/app:1.2"), Some("1.2"));
        assert_eq!(tag("busybox:latest"), Some("latest"));
        assert_eq!(tag("busybox@sha256:abc"), Some(""));
    }
}
