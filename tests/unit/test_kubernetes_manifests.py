"""deploy/kubernetes/ against the Kubernetes schemas (kubernetes-validate, offline), and the values the
schemas leave as free strings but the API server or the pattern itself constrains."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from octuefs.cli.mount import parse_option_string

MANIFESTS = Path(__file__).parents[2] / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30.0"  # native sidecars (init containers with restartPolicy Always) are on by default
RESOURCES = ["serviceaccount.yaml", "deployment.yaml", "deployment-secret.yaml", "job.yaml"]
PROPAGATIONS = {"None", "HostToContainer", "Bidirectional"}
PULL_POLICIES = {"Always", "IfNotPresent", "Never"}


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((MANIFESTS / name).read_text())


def pod_spec(name: str) -> dict[str, Any]:
    return load(name)["spec"]["template"]["spec"]


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return spec.get("initContainers", []) + spec["containers"]


def octuefs_container(spec: dict[str, Any]) -> dict[str, Any]:
    (found,) = (container for container in containers(spec) if container["name"] == "octuefs")
    return found


def environment(container: dict[str, Any]) -> dict[str, str]:
    return {variable["name"]: variable["value"] for variable in container.get("env", [])}


POD_MANIFESTS = ["deployment.yaml", "deployment-secret.yaml", "job.yaml"]


@pytest.mark.parametrize("name", RESOURCES)
def test_manifest_is_valid_against_the_kubernetes_schema_strictly(name):
    assert kubernetes_validate.validate(load(name), KUBERNETES_VERSION, strict=True)


def test_kustomization_names_existing_files_and_every_resource_is_validated():
    kustomization = load("kustomization.yaml")
    generated = [file for generator in kustomization["configMapGenerator"] for file in generator["files"]]
    named = kustomization["resources"] + generated
    assert all((MANIFESTS / file).is_file() for file in named)
    assert set(kustomization["resources"]) <= set(RESOURCES)
    assert {path.name for path in MANIFESTS.glob("*.yaml")} == {*RESOURCES, "kustomization.yaml"}


@pytest.mark.parametrize("name", POD_MANIFESTS)
def test_enum_like_values_are_ones_kubernetes_accepts(name):
    spec = pod_spec(name)
    for container in containers(spec):
        assert container.get("imagePullPolicy", "IfNotPresent") in PULL_POLICIES
        for mount in container.get("volumeMounts", []):
            assert mount.get("mountPropagation", "None") in PROPAGATIONS
            # The API server refuses Bidirectional outside a privileged container; the schema does not.
            if mount.get("mountPropagation") == "Bidirectional":
                assert container["securityContext"]["privileged"] is True
    for container in spec.get("initContainers", []):
        assert container.get("restartPolicy", "Always") == "Always"
    assert spec.get("restartPolicy", "Always") in ({"Never", "OnFailure"} if name == "job.yaml" else {"Always"})


@pytest.mark.parametrize("name", POD_MANIFESTS)
def test_the_sidecar_shares_its_mount_with_the_app_through_propagation(name):
    spec = pod_spec(name)
    sidecar = octuefs_container(spec)
    mountpoint = environment(sidecar)["OCTUEFS_MOUNTPOINT"]
    (shared,) = (mount for mount in sidecar["volumeMounts"] if mountpoint.startswith(mount["mountPath"] + "/"))
    assert shared["mountPropagation"] == "Bidirectional"
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    assert set(volumes[shared["name"]]) & {"emptyDir", "hostPath"}
    apps = [container for container in containers(spec) if container is not sidecar]
    assert apps
    for app in apps:
        assert "privileged" not in app.get("securityContext", {})
        (seen,) = (mount for mount in app["volumeMounts"] if mount["name"] == shared["name"])
        assert seen["mountPropagation"] == "HostToContainer" and seen["mountPath"] == shared["mountPath"]


@pytest.mark.parametrize("name", POD_MANIFESTS)
def test_cache_is_a_bounded_emptydir_and_shutdown_fits_the_grace_period(name):
    spec = pod_spec(name)
    sidecar = octuefs_container(spec)
    (cache,) = (mount for mount in sidecar["volumeMounts"] if mount["mountPath"] == "/var/cache/octuefs")
    volume = next(volume for volume in spec["volumes"] if volume["name"] == cache["name"])
    assert volume["emptyDir"]["sizeLimit"].endswith("Gi")
    options = parse_option_string(environment(sidecar)["OCTUEFS_OPTIONS"])
    assert options["cache_size"] < int(volume["emptyDir"]["sizeLimit"].removesuffix("Gi")) * 2**30
    assert spec["terminationGracePeriodSeconds"] > options["stop_timeout"]
    probe = ["octuefs", "stats", "--json", environment(sidecar)["OCTUEFS_MOUNTPOINT"]]
    assert sidecar["startupProbe"]["exec"]["command"] == probe


@pytest.mark.parametrize("name", POD_MANIFESTS)
def test_prometheus_annotations_point_at_the_metrics_port(name):
    template = load(name)["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"
    ports = octuefs_container(template["spec"])["ports"]
    assert {port["containerPort"] for port in ports} == {int(annotations["prometheus.io/port"])}


def test_credentials_come_from_workload_identity_or_a_secret():
    account = load("serviceaccount.yaml")
    assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].endswith(".iam.gserviceaccount.com")
    for name in ("deployment.yaml", "job.yaml"):
        assert pod_spec(name)["serviceAccountName"] == account["metadata"]["name"]
    spec = pod_spec("deployment-secret.yaml")
    key = Path(environment(octuefs_container(spec))["GOOGLE_APPLICATION_CREDENTIALS"])
    (mount,) = (mount for mount in octuefs_container(spec)["volumeMounts"] if mount["mountPath"] == str(key.parent))
    assert mount["readOnly"] is True
    assert next(volume for volume in spec["volumes"] if volume["name"] == mount["name"])["secret"]["secretName"]


def test_the_job_is_indexed_and_every_worker_knows_how_many_there_are():
    job = load("job.yaml")["spec"]
    assert job["completionMode"] == "Indexed"
    (worker,) = job["template"]["spec"]["containers"]
    assert int(environment(worker)["JOB_COMPLETIONS"]) == job["completions"]
    assert worker["command"][-1] == "/opt/worker/worker.py"
