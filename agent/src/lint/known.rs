//! What lint knows about common sidecars from their name and image: the mesh proxies an
//! injector adds (their admin ports, how a Job stops them), and the names of containers that
//! serve the app next to them (proxies, exporters, log shippers).

use serde_json::Value;

/// A mesh's injected proxy.
#[derive(Debug)]
pub struct Mesh {
    /// The container name its injector gives it.
    pub name: &'static str,
    /// A part of its image's name.
    pub image: &'static str,
    /// The ports it serves whether or not they are declared (admin, health, quit).
    pub ports: &'static [u16],
    /// How a Job's main container stops it, for messages.
    pub stop: &'static str,
}

/// The mesh proxies lint knows.
pub const MESHES: &[Mesh] = &[
    Mesh {
        name: "istio-proxy",
        image: "istio/proxy",
        ports: &[15000, 15020, 15021, 15090],
        stop: "end the main container with `pilot-agent request POST quitquitquit` (or `curl -X POST http://127.0.0.1:15020/quitquitquit`), or use Istio's native-sidecar mode",
    },
    Mesh {
        name: "linkerd-proxy",
        image: "linkerd/proxy",
        ports: &[4191, 4143, 4140],
        stop: "run the main command as `linkerd-await --shutdown -- CMD` (or `curl -X POST http://127.0.0.1:4191/shutdown` at its end), or use Linkerd's native-sidecar mode",
    },
];

/// Words in a container's name or image that say it serves the app next to it.
const SIDECAR_HINTS: &[&str] = &[
    "proxy",
    "envoy",
    "exporter",
    "fluent-bit",
    "fluentbit",
    "fluentd",
    "filebeat",
    "promtail",
    "otel",
    "collector",
    "vault-agent",
    "log-shipper",
    "cloudsql",
    "ambassador",
];

/// The image's name without registry, tag or digest (`docker.io/istio/proxyv2:1.22` →
/// `istio/proxyv2`, keeping the last two path parts).
fn image_name(container: &Value) -> String {
    let image = container["image"].as_str().unwrap_or("");
    let image = image.split('@').next().unwrap_or(image);
    let parts: Vec<&str> = image.split('/').collect();
    let tail = parts[parts.len().saturating_sub(2)..].join("/");
    match tail.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => name.to_string(),
        _ => tail,
    }
}

/// The mesh proxy this container is, by name or image.
pub fn mesh(name: &str, container: &Value) -> Option<&'static Mesh> {
    let image = image_name(container);
    MESHES
        .iter()
        .find(|m| m.name == name || image.contains(m.image))
}

/// Whether the name or image says it serves the app next to it (a proxy, an exporter, a
/// log shipper): a sidecar even when nothing marks it.
pub fn looks_like_sidecar(name: &str, container: &Value) -> bool {
    let image = image_name(container);
    SIDECAR_HINTS
        .iter()
        .any(|h| name.contains(h) || image.contains(h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn meshes_and_sidecars_are_known_by_name_or_image() {
        let istio = json!({"image": "docker.io/istio/proxyv2:1.22.3"});
        assert_eq!(mesh("proxy", &istio).map(|m| m.name), Some("istio-proxy"));
        let plain = json!({"image": "busybox:1.36.1"});
        assert_eq!(
            mesh("linkerd-proxy", &plain).map(|m| m.name),
            Some("linkerd-proxy")
        );
        assert!(mesh("app", &plain).is_none());
        assert!(looks_like_sidecar("exporter", &plain));
        assert!(looks_like_sidecar(
            "x",
            &json!({"image": "oliver006/redis_exporter:v1.62.0"})
        ));
        assert!(looks_like_sidecar(
            "db",
            &json!({"image": "gcr.io/cloudsql-docker/gce-proxy:1.33.16"})
        ));
        assert!(!looks_like_sidecar("tar-files", &plain));
        assert!(!looks_like_sidecar(
            "app",
            &json!({"image": "localhost:5000/app:1.0"})
        ));
    }
}
