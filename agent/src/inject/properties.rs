//! Properties on generated Pods: `uninject(inject(x)) == x` and `inject(inject(x)) ==
//! inject(x)`, compared as the YAML text written (so key order counts), and the output reads
//! back as what was written.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::{Key, Options, Setting, inject, uninject};
use crate::manifest::{Document, parse, to_yaml};

const NAMES: [&str; 4] = ["app", "proxy", "log-shipper", "db"];

fn container(name: &'static str) -> impl Strategy<Value = Value> {
    (
        prop::option::of(prop::collection::vec("[a-z/=:.-]{1,12}", 1..4)),
        prop::option::of(prop::collection::vec("[ -~]{0,10}", 0..3)),
        prop::option::of(1u16..65535),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(move |(command, args, port, mount, extra)| {
            let mut c = json!({"name": name, "image": format!("example.com/{name}:1")});
            let o = c.as_object_mut().expect("object");
            if let Some(command) = command {
                o.insert("command".into(), json!(command));
            }
            if let Some(args) = args {
                o.insert("args".into(), json!(args));
            }
            if let Some(port) = port {
                o.insert("ports".into(), json!([{"containerPort": port}]));
            }
            if mount {
                o.insert(
                    "volumeMounts".into(),
                    json!([{"name": "data", "mountPath": "/data"}]),
                );
            }
            if extra {
                o.insert(
                    "x-fieldFromTheFuture".into(),
                    json!({"on": "yes", "n": 1.5}),
                );
            }
            c
        })
}

fn pod() -> impl Strategy<Value = Value> {
    (
        prop::sample::subsequence(NAMES.to_vec(), 1..=4).prop_flat_map(|names| {
            names.into_iter().map(container).collect::<Vec<_>>()
        }),
        any::<bool>(),
        any::<bool>(),
        prop::option::of(0u64..120),
        any::<bool>(),
        prop::sample::select(vec!["Pod", "Deployment", "Job"]),
    )
        .prop_map(|(containers, volumes, init, grace, annotations, kind)| {
            let mut spec = json!({"containers": containers});
            let s = spec.as_object_mut().expect("object");
            if let Some(g) = grace {
                s.insert("terminationGracePeriodSeconds".into(), json!(g));
            }
            if init {
                s.insert("initContainers".into(), json!([{"name": "init", "image": "busybox:1", "command": ["true"]}]));
            }
            if volumes {
                s.insert("volumes".into(), json!([{"name": "data", "emptyDir": {}}]));
            }
            let mut metadata = json!({"labels": {"app": "x"}});
            if annotations {
                metadata["annotations"] = json!({"team": "a"});
            }
            let template = json!({"metadata": metadata, "spec": spec});
            match kind {
                "Pod" => {
                    let mut t = template;
                    t["metadata"]["name"] = json!("p");
                    json!({"apiVersion": "v1", "kind": "Pod", "metadata": t["metadata"], "spec": t["spec"]})
                }
                "Job" => json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
                    "spec": {"template": template}}),
                _ => json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                    "spec": {"template": template}}),
            }
        })
}

fn options() -> impl Strategy<Value = Options> {
    (
        prop::sample::subsequence(NAMES.to_vec(), 0..=2),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(sidecars, native, job)| {
            let mut opts = Options {
                native_sidecars: native,
                job,
                ..Options::default()
            };
            for name in NAMES {
                // Every container can be wrapped: an entrypoint if it has no command, a probe
                // if it is a sidecar without a port.
                opts.settings.insert(
                    (name.into(), Key::Entrypoint),
                    Setting::Words(vec![format!("/{name}")]),
                );
                opts.settings.insert(
                    (name.into(), Key::ReadyWhen),
                    Setting::Flag(format!("file:/tmp/{name}")),
                );
            }
            opts.sidecars = Some(sidecars.into_iter().map(String::from).collect());
            opts
        })
}

fn doc(value: &Value) -> Document {
    Document {
        origin: "gen#1".into(),
        value: value.clone(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn uninject_restores_and_inject_is_idempotent(pod in pod(), opts in options()) {
        // Settings naming containers the Pod does not have are refused; keep those it has.
        let mut opts = opts;
        let have = |n: &str| to_yaml(std::slice::from_ref(&pod)).contains(&format!("name: {n}\n"));
        opts.settings.retain(|(c, _), _| have(c));
        opts.sidecars = opts.sidecars.map(|s| s.into_iter().filter(|c| have(c)).collect());

        let original = to_yaml(std::slice::from_ref(&pod));
        let mut once = doc(&pod);
        if inject(&mut once, &opts).is_err() {
            // e.g. a Job with two main containers and a sidecar: refused, nothing written.
            return Ok(());
        }
        let injected = to_yaml(std::slice::from_ref(&once.value));
        prop_assert_ne!(&injected, &original);

        let read_back = parse("out", &injected).expect("inject's output parses");
        prop_assert_eq!(&read_back[0].value, &once.value);

        let mut twice = doc(&once.value);
        inject(&mut twice, &opts).expect("injecting injected output");
        prop_assert_eq!(to_yaml(&[twice.value]), injected.clone());

        let mut back = doc(&once.value);
        uninject(&mut back).expect("uninject");
        prop_assert_eq!(to_yaml(&[back.value]), original);
    }
}
