//! `podsignal lint` end to end: the real binary on real files. Every rule has a fixture that
//! fires it (tests/lint/RULE/bad.yaml) and one that does not (good.yaml); the examples and
//! `inject`'s output are clean.

use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;

mod common;
use common::{podsignal_with_stdin, stderr, stdout, workspace_root};

fn root() -> PathBuf {
    workspace_root()
}

fn podsignal(args: &[&str], stdin: Option<&str>) -> Output {
    podsignal_with_stdin(args, stdin)
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exit code")
}

/// `lint --format json ARGS`: the exit code and the rule ids found, in order.
fn lint_json(args: &[&str]) -> (i32, Vec<String>, Value) {
    let mut all = vec!["lint", "--format", "json"];
    all.extend_from_slice(args);
    findings(&podsignal(&all, None), &format!("{args:?}"))
}

/// The exit code, the rule ids in order, and the JSON findings of a `--format json` run.
fn findings(out: &Output, what: &str) -> (i32, Vec<String>, Value) {
    let json: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", stderr(out)));
    let rules = json
        .as_array()
        .expect("an array")
        .iter()
        .map(|f| f["rule"].as_str().expect("rule").to_string())
        .collect();
    (code(out), rules, json)
}

fn rule_ids() -> Vec<String> {
    let out = podsignal(&["lint", "--list-rules"], None);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| l.split_whitespace().next().expect("an id").to_string())
        .collect()
}

/// How many documents a fixture has (`---` lines between them).
fn documents_in(file: &str) -> usize {
    let text = std::fs::read_to_string(root().join(file)).expect("fixture");
    text.split("\n---\n")
        .filter(|doc| doc.lines().any(|l| l.starts_with("kind:")))
        .count()
}

#[test]
fn every_rule_fires_on_each_document_of_its_bad_fixture_and_not_on_its_good_one() {
    let ids = rule_ids();
    assert!(ids.len() >= 18, "{ids:?}");
    for id in &ids {
        let dir = format!("tests/lint/{id}");
        let bad = format!("{dir}/bad.yaml");
        let (code, found, json) = lint_json(&[&bad]);
        assert_eq!(code, 1, "{bad}: {json:#}");
        assert!(found.contains(id), "{bad}: {id} not found in {found:?}");
        // Each document of bad.yaml is a case of its own (red-team reproductions among them).
        for n in 1..=documents_in(&bad) {
            let origin = format!("{bad}#{n}");
            let hit = json
                .as_array()
                .expect("an array")
                .iter()
                .any(|f| f["rule"] == id.as_str() && f["document"] == origin.as_str());
            assert!(hit, "{origin}: {id} not found: {json:#}");
        }
        let (code, found, json) = lint_json(&[&format!("{dir}/good.yaml")]);
        assert!(!found.contains(id), "{dir}/good.yaml: {id} found: {json:#}");
        assert_eq!(code, 0, "{dir}/good.yaml is not clean: {json:#}");
    }
}

#[test]
fn every_fixture_directory_is_a_rule_and_every_rule_is_documented() {
    let ids = rule_ids();
    let mut dirs: Vec<String> = std::fs::read_dir(root().join("tests/lint"))
        .expect("tests/lint")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(dirs, sorted);
    let docs = std::fs::read_to_string(root().join("docs/patterns.md")).expect("patterns.md");
    for id in &ids {
        assert!(
            docs.contains(&format!("\n### {id}\n")),
            "docs/patterns.md has no `### {id}` section"
        );
    }
}

#[test]
fn plain_output_is_one_line_per_finding_in_input_order_with_a_summary_on_stderr() {
    let out = podsignal(
        &[
            "lint",
            "tests/lint/prestop-sleep-ordering/bad.yaml",
            "tests/lint/latest-tag/bad.yaml",
        ],
        None,
    );
    assert_eq!(code(&out), 1);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 7, "{text}");
    assert!(lines[0].starts_with(
        "warning prestop-sleep-ordering tests/lint/prestop-sleep-ordering/bad.yaml#1 Pod/prestop spec.containers[1] (proxy): "
    ), "{}", lines[0]);
    assert!(lines[0].ends_with("(docs/patterns.md#prestop-sleep-ordering)"));
    assert!(lines[1].contains("bad.yaml#2 Pod/prestop-too-long spec.containers[0] (web): "));
    assert!(
        lines[2].contains("bad.yaml#3 Deployment/d spec.template.spec.containers[1] (proxy): ")
    );
    assert!(lines[5].contains("latest-tag/bad.yaml#1 Pod/latest spec.containers[0] (web)"));
    assert!(lines[6].contains("spec.containers[1] (tools)"));
    assert_eq!(
        stderr(&out).trim(),
        "podsignal lint: 7 findings (0 error, 7 warning, 0 info) in 4 documents"
    );
}

#[test]
fn fail_on_sets_the_threshold() {
    let bad = "tests/lint/latest-tag/bad.yaml";
    let out = podsignal(&["lint", "--fail-on", "error", bad], None);
    assert_eq!(code(&out), 0, "only warnings: {}", stdout(&out));
    assert_eq!(stdout(&out).lines().count(), 2, "still reported");
    let out = podsignal(&["lint", "--fail-on", "info", bad], None);
    assert_eq!(code(&out), 1);
    let errors = "tests/lint/wait-for-cycle/bad.yaml";
    let out = podsignal(&["lint", "--fail-on", "error", errors], None);
    assert_eq!(code(&out), 1);
}

#[test]
fn bad_input_exits_2_naming_the_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let not_yaml = tmp.path().join("broken.yaml");
    std::fs::write(&not_yaml, "kind: Pod\nspec: [1, 2\n").expect("write");
    let out = podsignal(&["lint", not_yaml.to_str().expect("utf-8")], None);
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert!(err.contains("broken.yaml: not valid YAML"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    let scalar = tmp.path().join("scalar.yaml");
    std::fs::write(
        &scalar,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: []}\n---\njust words\n",
    )
    .expect("write");
    let out = podsignal(&["lint", scalar.to_str().expect("utf-8")], None);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("scalar.yaml#2: not a Kubernetes object"),
        "{}",
        stderr(&out)
    );

    let out = podsignal(
        &["lint", "-"],
        Some("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {}\n"),
    );
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("stdin#1: Deployment/web: no spec.template.spec.containers list"),
        "{}",
        stderr(&out)
    );

    let out = podsignal(&["lint", "/nonexistent/podsignal-lint.yaml"], None);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("/nonexistent/podsignal-lint.yaml"));
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations: {ANNOTATIONS}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 65532, fsGroup: 65532}
      containers:
        - name: app
          image: nginx
          resources: {limits: {memory: 64Mi}}
";

#[test]
fn lint_ignore_silences_on_the_object_or_the_template_and_typos_are_findings() {
    let with = |annotations: &str| DEPLOYMENT.replace("{ANNOTATIONS}", annotations);
    let (code, found, _) = lint_stdin(&with("{}"));
    assert_eq!((code, found), (1, vec!["latest-tag".to_string()]));
    let (code, found, _) = lint_stdin(&with("{podsignal.io/lint-ignore: latest-tag}"));
    assert_eq!((code, found), (0, vec![]));
    let on_template = with("{}").replace(
        "      labels: {app: web}\n",
        "      labels: {app: web}\n      annotations: {podsignal.io/lint-ignore: \"pod-as-vm, latest-tag\"}\n",
    );
    let (code, found, _) = lint_stdin(&on_template);
    assert_eq!((code, found), (0, vec![]));
    let (code, found, json) = lint_stdin(&with("{podsignal.io/lint-ignore: \"latest-tags\"}"));
    assert_eq!(code, 1);
    assert_eq!(found, ["unknown-lint-ignore", "latest-tag"]);
    assert!(
        json[0]["message"]
            .as_str()
            .expect("message")
            .contains("\"latest-tags\"")
    );
}

/// `lint --format json -` with `stdin` as the input.
fn lint_stdin(stdin: &str) -> (i32, Vec<String>, Value) {
    findings(
        &podsignal(&["lint", "--format", "json", "-"], Some(stdin)),
        "stdin",
    )
}

#[test]
fn sarif_is_2_1_0_with_every_rule_and_one_result_per_finding() {
    let out = podsignal(
        &[
            "lint",
            "--format",
            "sarif",
            "tests/lint/podsignal-binary-volume/bad.yaml",
        ],
        None,
    );
    assert_eq!(code(&out), 1);
    let sarif: Value = serde_json::from_slice(&out.stdout).expect("SARIF is JSON");
    assert_eq!(sarif["version"], "2.1.0");
    assert!(
        sarif["$schema"]
            .as_str()
            .expect("$schema")
            .contains("sarif-2.1.0")
    );
    let run = &sarif["runs"][0];
    let driver = &run["tool"]["driver"];
    assert_eq!(driver["name"], "podsignal");
    assert!(
        driver["informationUri"]
            .as_str()
            .expect("uri")
            .starts_with("https://")
    );
    let rules = driver["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), rule_ids().len());
    for r in rules {
        let id = r["id"].as_str().expect("id");
        assert!(r["shortDescription"]["text"].is_string());
        assert!(
            r["helpUri"]
                .as_str()
                .expect("helpUri")
                .ends_with(&format!("docs/patterns.md#{id}"))
        );
        assert!(matches!(
            r["defaultConfiguration"]["level"].as_str(),
            Some("note" | "warning" | "error")
        ));
    }
    let results = run["results"].as_array().expect("results");
    assert_eq!(results.len(), 2);
    for r in results {
        assert_eq!(r["ruleId"], "podsignal-binary-volume");
        assert_eq!(r["level"], "error");
        assert!(r["message"]["text"].is_string());
        let loc = &r["locations"][0];
        assert_eq!(
            loc["physicalLocation"]["artifactLocation"]["uri"],
            "tests/lint/podsignal-binary-volume/bad.yaml"
        );
        assert_eq!(loc["physicalLocation"]["region"]["startLine"], 1);
        assert!(
            loc["logicalLocations"][0]["fullyQualifiedName"]
                .as_str()
                .expect("name")
                .starts_with(
                    "tests/lint/podsignal-binary-volume/bad.yaml#1 Pod/binary-volume spec."
                )
        );
    }
}

#[test]
fn the_examples_are_clean() {
    let mut args = vec![];
    let mut dirs: Vec<String> = std::fs::read_dir(root().join("examples"))
        .expect("examples")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    args.extend(dirs.iter().map(String::as_str));
    assert!(args.len() >= 8, "{args:?}");
    let (code, found, json) = lint_json(&args);
    assert_eq!((code, found), (0, vec![]), "{json:#}");
}

/// A plain app + proxy workload that satisfies every rule but the ones inject fixes.
const PLAIN: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 65532, fsGroup: 65532}
      containers:
        - name: app
          image: example.com/web:1.4.2
          command: [/web, --upstream=http://127.0.0.1:15001]
          ports: [{containerPort: 8080}]
          resources: {limits: {cpu: 500m, memory: 256Mi}}
        - name: proxy
          image: example.com/proxy:2.0.1
          command: [/proxy, --listen=127.0.0.1:15001]
          ports: [{containerPort: 15001}]
          startupProbe: {tcpSocket: {port: 15001}, periodSeconds: 1, failureThreshold: 30}
          resources: {limits: {cpu: 200m, memory: 64Mi}}
";

/// `inject ARGS` on `input`, then `lint` on what it wrote.
fn lint_injected(input: &str, args: &[&str]) -> (i32, Vec<String>, Value) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let plain = tmp.path().join("plain.yaml");
    std::fs::write(&plain, input).expect("write");
    let mut all = vec!["inject"];
    all.extend_from_slice(args);
    all.push(plain.to_str().expect("utf-8"));
    let out = podsignal(&all, None);
    assert_eq!(code(&out), 0, "inject: {}", stderr(&out));
    let injected = tmp.path().join("injected.yaml");
    std::fs::write(&injected, &out.stdout).expect("write");
    lint_json(&[injected.to_str().expect("utf-8")])
}

#[test]
fn inject_output_of_a_plain_manifest_is_clean() {
    // The plain manifest has the race inject removes: app calls the proxy unordered.
    assert_eq!(
        lint_stdin(PLAIN).1,
        ["localhost-port-without-ordering"],
        "the plain input"
    );
    for args in [
        &["--sidecar", "proxy"][..],
        &["--sidecar", "proxy", "--native-sidecar"],
    ] {
        let (code, found, json) = lint_injected(PLAIN, args);
        assert_eq!((code, found), (0, vec![]), "inject {args:?}: {json:#}");
    }
    // A Job whose sidecar would never exit: inject makes it exit with 0 after main.
    let job = PLAIN
        .replace(
            "apiVersion: apps/v1\nkind: Deployment",
            "apiVersion: batch/v1\nkind: Job",
        )
        .replace("  selector: {matchLabels: {app: web}}\n", "")
        .replace(
            "    spec:\n      securityContext",
            "    spec:\n      restartPolicy: Never\n      securityContext",
        );
    let (_, found, _) = lint_stdin(&job);
    assert!(
        found.contains(&"job-sidecar-never-exits".to_string()),
        "{found:?}"
    );
    let (code, found, json) = lint_injected(&job, &["--sidecar", "proxy"]);
    assert_eq!(
        (code, found),
        (0, vec![]),
        "inject --sidecar proxy (Job): {json:#}"
    );
}

#[test]
fn list_rules_prints_id_severity_and_summary() {
    let out = podsignal(&["lint", "--list-rules"], None);
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.starts_with("job-sidecar-never-exits "))
        .expect("the rule is listed");
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words[1], "error");
    assert!(words.len() > 4, "{line}");
}

/// A Pod whose names carry a newline followed by a forged finding, and terminal escapes.
const HOSTILE_NAMES: &str = "apiVersion: v1
kind: Pod
metadata: {name: \"evil\\nerror wait-for-cycle fake.yaml#1 Pod/x\\e]0;pwned\\a\"}
spec:
  containers:
    - {name: \"app\\r\\e[2K\\nerror forged\", image: nginx}
";

#[test]
fn plain_output_escapes_control_characters_from_names() {
    let out = podsignal(&["lint", "-"], Some(HOSTILE_NAMES));
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "one finding, one line: {text:?}");
    assert!(
        !text.contains('\u{1b}') && !text.contains('\r') && !text.contains('\u{7}'),
        "{text:?}"
    );
    assert!(
        text.starts_with("warning latest-tag stdin#1 Pod/evil\\nerror wait-for-cycle"),
        "{text:?}"
    );
}

#[test]
fn a_huge_prestop_sleep_is_a_finding_not_a_panic() {
    for hook in [
        "{sleep: {seconds: 18446744073709551615}}",
        "{exec: {command: [sh, -c, \"sleep 18446744073709551615; sleep 1\"]}}",
    ] {
        let pod = format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: p}}
spec:
  containers:
    - name: proxy
      image: example.com/proxy:1.0.0
      command: [podsignal, run, --name=proxy, --grace=18446744073709551615s, --, /proxy]
      lifecycle: {{preStop: {hook}}}
"
        );
        let (code, found, json) = lint_stdin(&pod);
        assert_eq!(code, 1, "{hook}: {json:#}");
        assert!(
            found.contains(&"prestop-sleep-ordering".to_string()),
            "{hook}: {found:?}"
        );
    }
}

#[test]
fn sarif_uris_are_percent_encoded() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("sarif uri#bad.yaml");
    std::fs::copy(root().join("tests/lint/latest-tag/bad.yaml"), &file).expect("copy");
    let out = podsignal(
        &["lint", "--format", "sarif", file.to_str().expect("utf-8")],
        None,
    );
    let sarif: Value = serde_json::from_slice(&out.stdout).expect("SARIF is JSON");
    let uri = sarif["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        .as_str()
        .expect("uri")
        .to_string();
    assert!(uri.ends_with("/sarif%20uri%23bad.yaml"), "{uri}");
    assert!(!uri.contains(' ') && !uri.contains('#'), "{uri}");
}

#[test]
fn list_items_carry_their_own_annotations() {
    let list = |list_annotations: &str, item_annotations: &str| {
        format!(
            "apiVersion: v1
kind: List
metadata: {{annotations: {list_annotations}}}
items:
  - apiVersion: apps/v1
    kind: Deployment
    metadata: {{name: web, annotations: {item_annotations}}}
    spec:
      selector: {{matchLabels: {{app: web}}}}
      template:
        metadata: {{labels: {{app: web}}}}
        spec:
          securityContext: {{runAsNonRoot: true, runAsUser: 65532}}
          containers:
            - {{name: app, image: nginx, resources: {{limits: {{memory: 64Mi}}}}}}
"
        )
    };
    let (code, found, _) = lint_stdin(&list("{}", "{podsignal.io/lint-ignore: latest-tag}"));
    assert_eq!((code, found), (0, vec![]), "the item's own lint-ignore");
    let (_, found, _) = lint_stdin(&list("{podsignal.io/lint-ignore: latest-tag}", "{}"));
    assert_eq!(found, ["latest-tag"], "the List's metadata is no item's");
    let (_, found, json) = lint_stdin(&list("{}", "{podsignal.io/lint-ignore: latest-tagg}"));
    assert_eq!(found, ["unknown-lint-ignore", "latest-tag"]);
    assert_eq!(
        json[0]["path"], "items[0].metadata.annotations",
        "where the typo is"
    );
}

#[test]
fn a_quit_call_stops_only_the_sidecar_serving_its_port() {
    // etl POSTs istio's 15020/quitquitquit: istio-proxy stops, cloud-sql-proxy does not.
    let (_, _, json) = lint_json(&["tests/lint/job-sidecar-never-exits/bad.yaml"]);
    let paths: Vec<&str> = json
        .as_array()
        .expect("an array")
        .iter()
        .filter(|f| f["rule"] == "job-sidecar-never-exits")
        .map(|f| f["path"].as_str().expect("path"))
        .collect();
    assert!(
        paths.iter().any(|p| p.ends_with("(cloud-sql-proxy)")),
        "{paths:?}"
    );
    assert!(
        !paths.iter().any(|p| p.ends_with("(istio-proxy)")),
        "{paths:?}"
    );
}
