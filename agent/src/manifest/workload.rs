//! Where the pod templates are: one walk over a document, shared by `inject` and `lint`.

use serde_json::Value;

/// A pod template inside a document: a Pod itself, or the template of a controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// The object's kind (`Deployment`, `CronJob`, `Pod`, ...).
    pub kind: String,
    /// The object's `metadata.name` (empty when missing, e.g. with `generateName`).
    pub name: String,
    /// JSON pointer to the template, the object holding `metadata` and `spec` (`""` for a
    /// Pod, `/spec/template` for a Deployment, `/items/2/spec/template` inside a List).
    pub pointer: String,
    /// JSON pointer to the object itself (`""`, or `/items/2` inside a List): its own
    /// metadata, not the List's.
    pub object: String,
}

/// The kinds podsignal works on, their API group and where their pod template is.
const KINDS: &[(&str, &[&str], &str)] = &[
    ("Pod", &["v1"], ""),
    ("PodTemplate", &["v1"], "/template"),
    ("ReplicationController", &["v1"], "/spec/template"),
    ("Deployment", &["apps/v1"], "/spec/template"),
    ("StatefulSet", &["apps/v1"], "/spec/template"),
    ("DaemonSet", &["apps/v1"], "/spec/template"),
    ("ReplicaSet", &["apps/v1"], "/spec/template"),
    ("Job", &["batch/v1"], "/spec/template"),
    (
        "CronJob",
        &["batch/v1", "batch/v1beta1"],
        "/spec/jobTemplate/spec/template",
    ),
];

impl Workload {
    /// `Deployment/web`, for messages.
    pub fn label(&self) -> String {
        if self.name.is_empty() {
            self.kind.clone()
        } else {
            format!("{}/{}", self.kind, self.name)
        }
    }

    /// Whether its Pods are meant to finish (Job, CronJob): sidecars must exit then.
    pub fn runs_to_completion(&self) -> bool {
        matches!(self.kind.as_str(), "Job" | "CronJob")
    }

    /// A field of the template as a dotted path for messages (`spec.template.spec.containers[1]`).
    pub fn path(&self, below: &str) -> String {
        dotted(&format!("{}{below}", self.pointer))
    }

    /// A field of the object itself as a dotted path (`metadata.annotations`,
    /// `items[2].metadata.annotations`).
    pub fn object_path(&self, below: &str) -> String {
        dotted(&format!("{}{below}", self.object))
    }
}

/// The pod templates of a document, outermost first; `Err` names what a document of a known
/// workload kind is missing. Objects of other kinds (and of other API groups) have none.
pub fn workloads(doc: &Value) -> Result<Vec<Workload>, String> {
    let mut found = Vec::new();
    walk(doc, "", &mut found)?;
    Ok(found)
}

fn walk(object: &Value, at: &str, found: &mut Vec<Workload>) -> Result<(), String> {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let api = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if kind.ends_with("List") && api == "v1" {
        if let Some(items) = object.get("items").and_then(Value::as_array) {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{at}/items/{i}"), found)?;
            }
        }
        return Ok(());
    }
    let Some((_, _, template)) = KINDS
        .iter()
        .find(|(k, apis, _)| *k == kind && apis.contains(&api))
    else {
        return Ok(());
    };
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let workload = Workload {
        kind: kind.to_string(),
        name,
        pointer: format!("{at}{template}"),
        object: at.to_string(),
    };
    let containers = object.pointer(&format!("{template}/spec/containers"));
    if !matches!(containers, Some(Value::Array(_))) {
        return Err(format!(
            "{}: no {} list",
            workload.label(),
            workload.path("/spec/containers")
        ));
    }
    found.push(workload);
    Ok(())
}

/// `/spec/template/spec/containers/1` → `spec.template.spec.containers[1]`.
fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for part in pointer.split('/').skip(1) {
        if part.bytes().all(|b| b.is_ascii_digit()) && !part.is_empty() {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&part.replace("~1", "/").replace("~0", "~"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod_spec() -> Value {
        json!({"containers": [{"name": "a", "image": "x"}]})
    }

    #[test]
    fn each_kind_has_its_template_where_kubernetes_puts_it() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": pod_spec()});
        let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"spec": pod_spec()}}});
        let cron = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": pod_spec()}}}}});
        let list = json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}, deploy.clone(), cron.clone()]});
        assert_eq!(workloads(&pod).expect("pod")[0].pointer, "");
        assert_eq!(
            workloads(&deploy).expect("deploy")[0].pointer,
            "/spec/template"
        );
        let c = &workloads(&cron).expect("cron")[0];
        assert_eq!(c.pointer, "/spec/jobTemplate/spec/template");
        assert!(c.runs_to_completion());
        let in_list: Vec<_> = workloads(&list)
            .expect("list")
            .into_iter()
            .map(|w| w.pointer)
            .collect();
        assert_eq!(
            in_list,
            [
                "/items/1/spec/template",
                "/items/2/spec/jobTemplate/spec/template"
            ]
        );
        let objects: Vec<_> = workloads(&list)
            .expect("list")
            .into_iter()
            .map(|w| w.object)
            .collect();
        assert_eq!(objects, ["/items/1", "/items/2"]);
    }

    #[test]
    fn other_kinds_and_other_api_groups_have_no_template() {
        let svc = json!({"apiVersion": "v1", "kind": "Service", "spec": {}});
        let crd = json!({"apiVersion": "example.com/v1", "kind": "Deployment", "spec": {}});
        assert_eq!(workloads(&svc), Ok(vec![]));
        assert_eq!(workloads(&crd), Ok(vec![]));
    }

    #[test]
    fn a_workload_without_containers_is_named() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {}});
        assert_eq!(
            workloads(&d),
            Err("Deployment/web: no spec.template.spec.containers list".to_string())
        );
    }
}
