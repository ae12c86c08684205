//! The Kubernetes manifests in `deploy/kubernetes/`, checked without a
//! cluster: each file against the Kubernetes API's own schemas with
//! `kubernetes-validate --strict` (unknown fields are errors), then the
//! production properties the schemas cannot see, read from the parsed YAML:
//!
//! - the grace period outlasts each h2hop container's preStop sleep plus
//!   its drain timeout, as stated in its environment, and the app beside
//!   h2hop-sidecar stops only after that drain;
//! - readiness probes `/readyz` and liveness `/healthz` on the admin port
//!   the container actually listens on;
//! - every container has CPU and memory requests and a memory limit;
//! - a PodDisruptionBudget selects each Deployment's Pods, and each Service
//!   selects some Deployment's Pods;
//! - every container runs as uid 10001, non-root, without privilege
//!   escalation, on a read-only root, with every capability dropped and
//!   the runtime's default seccomp profile;
//! - Secrets are mounted as whole volumes (a subPath mount never sees a
//!   rotated Secret).
//!
//! The YAML is read by python3's PyYAML (which `kubernetes-validate`
//! depends on) and handed over as JSON. No cluster runs here: whether the
//! Pods start, pass their probes and drain is not tested.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use h2hop_integration::process::{output_within, program_or_skip};
use serde_json::Value;

/// The Kubernetes release whose schemas the manifests must satisfy: one
/// that `kubernetes-validate` 1.37.0 ships, and that clusters still run.
const KUBERNETES_VERSION: &str = "1.34.0";

/// How the skip line says to get `kubernetes-validate` (a Python package).
const KUBERNETES_VALIDATE_INSTALL: &str =
    "python3-pip, then: pip install kubernetes-validate==1.37.0";

/// The uid the image runs as (docker/Dockerfile).
const IMAGE_UID: u64 = 10001;

/// Bound on one external program's run.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// Prints a parsed YAML file's documents as one JSON array.
const YAML_TO_JSON: &str = "import json, sys, yaml
with open(sys.argv[1]) as f:
    docs = [d for d in yaml.safe_load_all(f) if d is not None]
json.dump(docs, sys.stdout)";

#[tokio::test]
async fn manifests_pass_the_kubernetes_schemas_strictly() {
    let test = "manifests_pass_the_kubernetes_schemas_strictly";
    let Some(validate) =
        program_or_skip(test, "kubernetes-validate", KUBERNETES_VALIDATE_INSTALL).unwrap()
    else {
        return;
    };
    for manifest in manifests() {
        let output = run(tokio::process::Command::new(&validate)
            .args([
                "--strict",
                "--quiet",
                "--kubernetes-version",
                KUBERNETES_VERSION,
            ])
            .arg(&manifest))
        .await;
        // --quiet prints only warnings and failures.
        assert!(
            output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
            "{} against Kubernetes {KUBERNETES_VERSION}: {}\n{}{}",
            manifest.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
    }
}

#[tokio::test]
async fn manifests_have_the_production_settings() {
    let test = "manifests_have_the_production_settings";
    let Some(python) = program_or_skip(test, "python3", "python3-yaml").unwrap() else {
        return;
    };
    let mut problems = Vec::new();
    for manifest in manifests() {
        let docs = parse(&python, &manifest).await;
        let name = manifest.file_name().unwrap().to_string_lossy().into_owned();
        let deployments = of_kind(&docs, "Deployment");
        assert!(!deployments.is_empty(), "{name}: no Deployment");
        for deployment in &deployments {
            let at = format!("{name}: Deployment {}", deployment["metadata"]["name"]);
            let pod = &deployment["spec"]["template"]["spec"];
            check_shutdown_timing(pod, &at, &mut problems);
            for container in containers(pod) {
                let at = format!("{at}, container {}", container["name"]);
                check_probes(container, &at, &mut problems);
                check_resources(container, &at, &mut problems);
                check_security(pod, container, &at, &mut problems);
            }
            check_secret_mounts(pod, &at, &mut problems);
            check_disruption_budget(&docs, deployment, &at, &mut problems);
        }
        check_service_selectors(&docs, &deployments, &name, &mut problems);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every `.yaml` file in `deploy/kubernetes/`, sorted.
fn manifests() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifest in {}", dir.display());
    files
}

/// Runs `command` to its end, within [`RUN_TIMEOUT`].
async fn run(command: &mut tokio::process::Command) -> Output {
    output_within(command, RUN_TIMEOUT).await.unwrap()
}

/// The documents of `manifest`, parsed by python3's PyYAML.
async fn parse(python: &Path, manifest: &Path) -> Vec<Value> {
    let output = run(tokio::process::Command::new(python)
        .args(["-c", YAML_TO_JSON])
        .arg(manifest))
    .await;
    assert!(
        output.status.success(),
        "parsing {} (python3 needs PyYAML: apt-get install python3-yaml): {}",
        manifest.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    match serde_json::from_slice(&output.stdout) {
        Ok(Value::Array(docs)) => docs,
        other => panic!("{}: not a list of documents: {other:?}", manifest.display()),
    }
}

/// The documents of `kind`.
fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|doc| doc["kind"] == kind).collect()
}

/// A Pod spec's containers.
fn containers(pod: &Value) -> &[Value] {
    pod["containers"].as_array().map_or(&[], Vec::as_slice)
}

/// The value of a container's environment variable `name`.
fn env<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
    container["env"]
        .as_array()?
        .iter()
        .find(|var| var["name"] == name)?["value"]
        .as_str()
}

/// The h2hop binary a container runs (`h2hop-front`, `h2hop-sidecar`), if
/// any, and the prefix of its environment variables.
fn h2hop_binary(container: &Value) -> Option<(&str, &str)> {
    match container["command"][0].as_str()? {
        "h2hop-front" => Some(("h2hop-front", "H2HOP_FRONT")),
        "h2hop-sidecar" => Some(("h2hop-sidecar", "H2HOP_SIDECAR")),
        _ => None,
    }
}

/// Seconds in a duration as the binaries take it: `20s`, `1m`, `500ms`.
fn seconds(duration: &str) -> f64 {
    let (number, unit) = duration
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((duration, "s"), |at| duration.split_at(at));
    let number: f64 = number
        .parse()
        .unwrap_or_else(|_| panic!("duration {duration:?}"));
    match unit {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        other => panic!("duration {duration:?}: unit {other:?}"),
    }
}

/// The seconds a container's `preStop: exec: sleep N` hook sleeps, if it
/// has one.
fn pre_stop_sleep(container: &Value) -> Option<f64> {
    let command = container["lifecycle"]["preStop"]["exec"]["command"].as_array()?;
    match command.as_slice() {
        [program, duration] if program == "sleep" => Some(seconds(duration.as_str()?)),
        _ => None,
    }
}

/// Each h2hop container states its drain timeout and sleeps in preStop,
/// and the grace period covers both; the other containers of a Pod with
/// h2hop-sidecar (the app) sleep in preStop until its drain has ended,
/// since its tunnels run through them.
fn check_shutdown_timing(pod: &Value, at: &str, problems: &mut Vec<String>) {
    let Some(grace) = pod["terminationGracePeriodSeconds"].as_f64() else {
        problems.push(format!("{at}: no terminationGracePeriodSeconds"));
        return;
    };
    let mut sidecar_stop = None;
    for container in containers(pod) {
        let sleep = pre_stop_sleep(container);
        if let Some(sleep) = sleep
            && sleep >= grace
        {
            problems.push(format!(
                "{at}, container {}: preStop sleeps {sleep} s of a {grace} s grace period",
                container["name"]
            ));
        }
        let Some((binary, prefix)) = h2hop_binary(container) else {
            continue;
        };
        let at = format!("{at}, {binary}");
        let drain = env(container, &format!("{prefix}_DRAIN_TIMEOUT"));
        let (Some(drain), Some(sleep)) = (drain, sleep) else {
            problems.push(format!(
                "{at}: needs both {prefix}_DRAIN_TIMEOUT and a preStop `sleep N` hook"
            ));
            continue;
        };
        let stop = seconds(drain) + sleep;
        if grace <= stop {
            problems.push(format!(
                "{at}: grace period {grace} s is not above preStop {sleep} s + drain {drain}"
            ));
        }
        if binary == "h2hop-sidecar" {
            sidecar_stop = Some(stop);
        }
    }
    let Some(sidecar_stop) = sidecar_stop else {
        return;
    };
    for app in containers(pod).iter().filter(|c| h2hop_binary(c).is_none()) {
        let sleep = pre_stop_sleep(app).unwrap_or(0.0);
        if sleep < sidecar_stop {
            problems.push(format!(
                "{at}, container {}: preStop sleeps {sleep} s, stopping before h2hop-sidecar's \
                 drain ends at {sidecar_stop} s",
                app["name"]
            ));
        }
    }
}

/// An h2hop container's probes: readiness on `/readyz`, liveness on
/// `/healthz`, both on the port its admin listener binds.
fn check_probes(container: &Value, at: &str, problems: &mut Vec<String>) {
    let Some((_, prefix)) = h2hop_binary(container) else {
        return;
    };
    let admin_port = env(container, &format!("{prefix}_ADMIN_LISTEN"))
        .and_then(|listen| listen.rsplit_once(':'))
        .and_then(|(_, port)| port.parse::<u64>().ok());
    let Some(admin_port) = admin_port else {
        problems.push(format!("{at}: no {prefix}_ADMIN_LISTEN with a port"));
        return;
    };
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &container[probe]["httpGet"];
        if get["path"] != path {
            problems.push(format!("{at}: {probe} path is {}, not {path}", get["path"]));
        }
        // The probe names the port by name or by number.
        let port = match &get["port"] {
            Value::String(name) => container["ports"]
                .as_array()
                .and_then(|ports| ports.iter().find(|port| port["name"] == *name))
                .and_then(|port| port["containerPort"].as_u64()),
            number => number.as_u64(),
        };
        if port != Some(admin_port) {
            problems.push(format!(
                "{at}: {probe} port {} is not the admin port {admin_port}",
                get["port"]
            ));
        }
    }
}

/// CPU and memory requests, and a memory limit no lower than the request.
fn check_resources(container: &Value, at: &str, problems: &mut Vec<String>) {
    let resources = &container["resources"];
    for (field, value) in [
        ("requests.cpu", &resources["requests"]["cpu"]),
        ("requests.memory", &resources["requests"]["memory"]),
        ("limits.memory", &resources["limits"]["memory"]),
    ] {
        if value.is_null() {
            problems.push(format!("{at}: no resources.{field}"));
        }
    }
    // The schema takes any string here; the API server would not.
    let request = &resources["requests"]["memory"];
    let limit = &resources["limits"]["memory"];
    match (
        request.as_str().and_then(mebibytes),
        limit.as_str().and_then(mebibytes),
    ) {
        (Some(request), Some(limit)) if limit < request => problems.push(format!(
            "{at}: memory limit {limit} MiB below the request {request} MiB"
        )),
        (Some(_), Some(_)) => {}
        _ => problems.push(format!(
            "{at}: memory request {request} and limit {limit} are not in Mi or Gi"
        )),
    }
}

/// A memory quantity in `Mi` or `Gi`, in MiB.
fn mebibytes(quantity: &str) -> Option<u64> {
    if let Some(mib) = quantity.strip_suffix("Mi") {
        return mib.parse().ok();
    }
    quantity
        .strip_suffix("Gi")?
        .parse::<u64>()
        .ok()
        .map(|gib| gib * 1024)
}

/// The container's security context, with the Pod's as the fallback for
/// the fields a Pod may set for all its containers.
fn check_security(pod: &Value, container: &Value, at: &str, problems: &mut Vec<String>) {
    let own = &container["securityContext"];
    let either = |field: &str| {
        if own[field].is_null() {
            pod["securityContext"][field].clone()
        } else {
            own[field].clone()
        }
    };
    let expected = [
        ("runAsNonRoot", either("runAsNonRoot"), Value::Bool(true)),
        ("runAsUser", either("runAsUser"), Value::from(IMAGE_UID)),
        (
            "seccompProfile.type",
            either("seccompProfile")["type"].clone(),
            Value::from("RuntimeDefault"),
        ),
        (
            "allowPrivilegeEscalation",
            own["allowPrivilegeEscalation"].clone(),
            Value::Bool(false),
        ),
        (
            "readOnlyRootFilesystem",
            own["readOnlyRootFilesystem"].clone(),
            Value::Bool(true),
        ),
    ];
    for (field, actual, wanted) in expected {
        if actual != wanted {
            problems.push(format!(
                "{at}: securityContext.{field} is {actual}, not {wanted}"
            ));
        }
    }
    let drops_all = own["capabilities"]["drop"]
        .as_array()
        .is_some_and(|drop| drop.iter().any(|cap| cap == "ALL"));
    if !drops_all {
        problems.push(format!("{at}: securityContext.capabilities.drop lacks ALL"));
    }
}

/// No Secret volume is mounted with subPath.
fn check_secret_mounts(pod: &Value, at: &str, problems: &mut Vec<String>) {
    let secrets: Vec<&Value> = pod["volumes"]
        .as_array()
        .map(|volumes| {
            volumes
                .iter()
                .filter(|v| !v["secret"].is_null())
                .map(|v| &v["name"])
                .collect()
        })
        .unwrap_or_default();
    for container in containers(pod) {
        for mount in container["volumeMounts"].as_array().into_iter().flatten() {
            if secrets.contains(&&mount["name"]) && !mount["subPath"].is_null() {
                problems.push(format!(
                    "{at}, container {}: Secret volume {} mounted with subPath",
                    container["name"], mount["name"]
                ));
            }
        }
    }
}

/// Whether every label of `selector` (a `matchLabels` map) is on `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|wanted| !wanted.is_empty() && wanted.iter().all(|(k, v)| labels[k] == *v))
}

/// A policy/v1 PodDisruptionBudget selects the Deployment's Pods.
fn check_disruption_budget(
    docs: &[Value],
    deployment: &Value,
    at: &str,
    problems: &mut Vec<String>,
) {
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let covered = of_kind(docs, "PodDisruptionBudget").iter().any(|pdb| {
        pdb["apiVersion"] == "policy/v1"
            && pdb["metadata"]["namespace"] == deployment["metadata"]["namespace"]
            && selects(&pdb["spec"]["selector"]["matchLabels"], labels)
    });
    if !covered {
        problems.push(format!(
            "{at}: no policy/v1 PodDisruptionBudget selects its Pods"
        ));
    }
    if !selects(&deployment["spec"]["selector"]["matchLabels"], labels) {
        problems.push(format!(
            "{at}: its selector does not match its own Pod labels"
        ));
    }
}

/// Each Service selects the Pods of some Deployment in the file.
fn check_service_selectors(
    docs: &[Value],
    deployments: &[&Value],
    name: &str,
    problems: &mut Vec<String>,
) {
    for service in of_kind(docs, "Service") {
        let selected = deployments.iter().any(|deployment| {
            selects(
                &service["spec"]["selector"],
                &deployment["spec"]["template"]["metadata"]["labels"],
            )
        });
        if !selected {
            problems.push(format!(
                "{name}: Service {} selects no Deployment's Pods",
                service["metadata"]["name"]
            ));
        }
    }
}
