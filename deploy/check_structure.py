"""What every service of the suite must have, in every rendered variant.

    python deploy/check_structure.py DEPLOY_DIR RENDER_DIR

RENDER_DIR holds `base.yaml` and `overlays/<name>.yaml`, the output of
`kubectl kustomize` for deploy/base and each deploy/overlays/<name>
(deploy/check.sh writes them). The services are the files that
deploy/base/kustomization.yaml lists (one file per service, see
deploy/README.md) and every `app` label found in the rendered base. For each
service and each variant:

- a Deployment named after it, selecting and labelling its pods app=<service>,
  with a container "server" that has readiness and liveness probes (and a
  startup probe when it has a database: it migrates before it serves);
- a Service named after it that selects those pods on a port the server has;
- a PodDisruptionBudget that selects those pods;
- a HorizontalPodAutoscaler on the Deployment, in base and in every overlay
  that autoscales (one that has any HPA); an overlay without HPAs must set
  the replica count of every Deployment instead;
- a NetworkPolicy that selects those pods, in every overlay that includes
  components/network-policies (or has any NetworkPolicy);
- when it has a database (an env var *__DATABASE_URL): the init container
  "migrate" running `migrate` in the server's image with the same database
  URL, or a Job that runs `migrate` in that image.

Prints one line per missing piece, naming variant, service and what is
missing, and exits 1 if there is any.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

# Files in deploy/base that are not a service.
NOT_SERVICES = {"namespace"}


def load(path: Path) -> list[dict]:
    with path.open() as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def labels_match(selector: dict | None, labels: dict) -> bool:
    """A label selector (matchLabels and In/NotIn/Exists/DoesNotExist) against labels."""
    if not selector:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return bool(selector.get("matchLabels") or selector.get("matchExpressions"))


def listed_services(deploy: Path) -> set[str]:
    kustomization = yaml.safe_load((deploy / "base" / "kustomization.yaml").read_text())
    return {
        Path(entry).stem
        for entry in kustomization.get("resources") or []
        if entry.endswith((".yaml", ".yml")) and Path(entry).stem not in NOT_SERVICES
    }


def includes_network_policies(deploy: Path, variant: str) -> bool:
    if variant == "base":
        return False
    kustomization = yaml.safe_load((deploy / variant / "kustomization.yaml").read_text())
    return any(
        Path(component).name == "network-policies"
        for component in kustomization.get("components") or []
    )


def env_names(container: dict) -> set[str]:
    return {env["name"] for env in container.get("env") or []}


def database_env(container: dict) -> set[str]:
    return {name for name in env_names(container) if name.endswith("__DATABASE_URL")}


def runs_migrate(container: dict, image: str) -> bool:
    return container.get("image") == image and "migrate" in (container.get("args") or [])


def check_service(variant: str, service: str, docs: list[dict], deploy: Path) -> list[str]:
    def by_kind(kind: str) -> list[dict]:
        return [d for d in docs if d.get("kind") == kind]

    missing: list[str] = []
    where = f"{variant}: {service}:"
    deployment = next(
        (d for d in by_kind("Deployment") if d["metadata"]["name"] == service), None
    )
    if deployment is None:
        return [f"{where} no Deployment named {service}"]

    spec = deployment["spec"]
    pod_labels = spec["template"]["metadata"].get("labels") or {}
    pod = spec["template"]["spec"]
    if pod_labels.get("app") != service:
        missing.append(f"{where} the Deployment's pods are not labelled app={service}")
    if not labels_match(spec.get("selector"), pod_labels):
        missing.append(f"{where} the Deployment's selector does not select its own pods")

    server = next((c for c in pod.get("containers") or [] if c["name"] == "server"), None)
    if server is None:
        missing.append(f"{where} the Deployment has no container named server")
        return missing
    has_database = bool(database_env(server))
    probes = ["readinessProbe", "livenessProbe"] + (["startupProbe"] if has_database else [])
    for probe in probes:
        if probe not in server:
            missing.append(f"{where} the server container has no {probe}")

    ports = {p.get("name") for p in server.get("ports") or []} | {
        p["containerPort"] for p in server.get("ports") or []
    }
    service_obj = next((d for d in by_kind("Service") if d["metadata"]["name"] == service), None)
    if service_obj is None:
        missing.append(f"{where} no Service named {service}")
    else:
        if not labels_match({"matchLabels": service_obj["spec"].get("selector")}, pod_labels):
            missing.append(f"{where} the Service {service} does not select app={service}")
        targets = {p.get("targetPort", p["port"]) for p in service_obj["spec"].get("ports") or []}
        if not targets & ports:
            missing.append(f"{where} the Service {service} targets no port of the server container")

    if not any(labels_match(d["spec"].get("selector"), pod_labels) for d in by_kind("PodDisruptionBudget")):
        missing.append(f"{where} no PodDisruptionBudget selects app={service}")

    autoscales = variant == "base" or bool(by_kind("HorizontalPodAutoscaler"))
    if autoscales:
        if not any(
            d["spec"]["scaleTargetRef"].get("kind") == "Deployment"
            and d["spec"]["scaleTargetRef"].get("name") == service
            for d in by_kind("HorizontalPodAutoscaler")
        ):
            missing.append(f"{where} no HorizontalPodAutoscaler scales the Deployment {service}")
    elif "replicas" not in spec:
        missing.append(
            f"{where} no HorizontalPodAutoscaler in this overlay and no replica count "
            f"for the Deployment {service} (add it under `replicas:`)"
        )

    if includes_network_policies(deploy, variant) or by_kind("NetworkPolicy"):
        if not any(labels_match(d["spec"].get("podSelector"), pod_labels) for d in by_kind("NetworkPolicy")):
            missing.append(f"{where} no NetworkPolicy selects app={service}")

    if has_database:
        image = server.get("image")
        migrate = next((c for c in pod.get("initContainers") or [] if c["name"] == "migrate"), None)
        job = any(
            runs_migrate(c, image)
            for j in by_kind("Job")
            for c in j["spec"]["template"]["spec"].get("containers") or []
        )
        if migrate is None and not job:
            missing.append(
                f"{where} has a database ({', '.join(sorted(database_env(server)))}) but no "
                f"migration: no init container named migrate and no Job running `migrate`"
            )
        elif migrate is not None:
            if not runs_migrate(migrate, image):
                missing.append(
                    f"{where} the migrate init container does not run `migrate` in the "
                    f"server's image {image}"
                )
            if not database_env(server) <= env_names(migrate):
                missing.append(f"{where} the migrate init container lacks the server's database URL")
    return missing


def main(deploy: Path, rendered: Path) -> int:
    variants = {"base": load(rendered / "base.yaml")}
    for path in sorted((rendered / "overlays").glob("*.yaml")):
        variants[f"overlays/{path.stem}"] = load(path)

    services = listed_services(deploy)
    labelled = {
        d["metadata"].get("labels", {}).get("app")
        for d in variants["base"]
        if d.get("metadata", {}).get("labels", {}).get("app")
    }
    problems = [
        f"base: {service}: base/kustomization.yaml lists {service}.yaml but no object is labelled app={service}"
        for service in sorted(services - labelled)
    ]
    services |= labelled

    for variant, docs in variants.items():
        for service in sorted(services):
            problems += check_service(variant, service, docs, deploy)

    for problem in problems:
        print(problem)
    if problems:
        print(f"structure: {len(problems)} problem(s)")
        return 1
    print(f"structure: {len(services)} services ({', '.join(sorted(services))}) complete in {', '.join(variants)}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
