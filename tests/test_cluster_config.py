"""The cluster YAMLs: Ray's own validation, the settings the README promises, pins that match the project."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
PIN = re.compile(r'"?([A-Za-z0-9_.\-\[\],]+)==([0-9][^"\s]*)"?')
LOCK_LINE = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", re.MULTILINE)


def lock_pins(path: Path) -> dict[str, str]:
    """`name==version` lines of a lock or constraints file, names canonicalised."""
    return {canonicalize_name(n): v for n, v in LOCK_LINE.findall(path.read_text())}


def locked_ray() -> str:
    return lock_pins(ROOT / "requirements.lock")["ray"]


def load(name: str) -> dict:
    return yaml.safe_load((CLUSTER / name).read_text())


def prepared(name: str) -> dict:
    """The config as `ray up` sees it: Ray's defaults merged in, then validated against Ray's schema."""
    config = prepare_config(copy.deepcopy(load(name)))
    validate_config(config)
    return config


def all_text(config: dict) -> str:
    return yaml.safe_dump(config)


@pytest.mark.parametrize("name", ["gpu.yaml", "local.yaml"])
def test_launcher_configs_pass_rays_validation(name):
    config = prepared(name)
    assert config["head_node_type"] in config["available_node_types"]


@pytest.mark.parametrize("name", ["gpu.yaml", "local.yaml"])
def test_head_runs_no_trials_keeps_dashboard_local_and_token_auth_on(name):
    config = prepared(name)
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--num-cpus=0" in head_start and "--num-gpus=0" in head_start
    assert "--dashboard-host=127.0.0.1" in head_start
    assert "0.0.0.0" not in all_text(config)
    for commands in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = [c for c in config[commands] if "ray start" in c]
        assert start and all("RAY_AUTH_MODE=token" in c for c in start), commands
    assert any("auth_token" in target for target in config["file_mounts"])


def test_gpu_yaml_autoscales_gpu_types_from_zero():
    config = prepared("gpu.yaml")
    assert config["provider"]["type"] == "aws"
    assert 0 < config["idle_timeout_minutes"] <= 30
    head = config["available_node_types"]["head"]
    assert head["resources"] == {"CPU": 0, "GPU": 0}
    workers = {k: v for k, v in config["available_node_types"].items() if k != "head"}
    gpus = {v["node_config"]["InstanceType"]: v["resources"]["GPU"] for v in workers.values()}
    assert gpus == {"g5.xlarge": 1, "g5.12xlarge": 4}
    for node_type in workers.values():
        assert node_type["min_workers"] == 0 and node_type["max_workers"] >= 1
        assert node_type["node_config"]["IamInstanceProfile"], "S3 access must come from an instance role"


def test_gpu_yaml_uses_maintained_images_at_the_projects_ray_and_no_keys():
    config = prepared("gpu.yaml")
    docker = config["docker"]
    images = [docker["head_image"], docker["worker_image"]]
    assert all(image.startswith(f"rayproject/ray:{locked_ray()}-py311-") for image in images)
    assert "-cu" in docker["worker_image"] and "ray-ml" not in " ".join(images)
    text = all_text(config).lower()
    for secret in ("aws_access_key", "aws_secret", "secret_access_key", "akia"):
        assert secret not in text
    assert "/home/ray/audiostyle" in config["file_mounts"]
    assert any("pip install" in c and "-e /home/ray/audiostyle" in c for c in config["worker_setup_commands"])
    (torch,) = [c for c in config["worker_setup_commands"] if "constraints.txt torch" in c]
    assert "--index-url" not in torch, "GPU workers install PyPI's default torch build, the GPU stack's CUDA 13.0"


def test_local_yaml_runs_on_listed_machines_over_ssh():
    raw = load("local.yaml")
    config = prepared("local.yaml")
    assert config["provider"]["type"] == "local"
    assert config["auth"]["ssh_user"] and config["auth"]["ssh_private_key"]
    node_type = config["available_node_types"][config["head_node_type"]]
    assert node_type["min_workers"] == node_type["max_workers"] == len(raw["provider"]["worker_ips"])


def kuberay() -> tuple[dict, dict]:
    docs = list(yaml.safe_load_all((CLUSTER / "kuberay.yaml").read_text()))
    by_kind = {d["kind"]: d for d in docs if d}
    return by_kind["RayCluster"], by_kind


def test_kuberay_raycluster_fields():
    cluster, by_kind = kuberay()
    assert cluster["apiVersion"] == "ray.io/v1"
    spec = cluster["spec"]
    assert spec["rayVersion"] == locked_ray()
    assert spec["authOptions"] == {"mode": "token"}
    assert spec["enableInTreeAutoscaling"] is True and spec["autoscalerOptions"]["idleTimeoutSeconds"] > 0
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    assert head.get("serviceType", "ClusterIP") == "ClusterIP"
    account = by_kind["ServiceAccount"]["metadata"]
    assert "eks.amazonaws.com/role-arn" in account["annotations"]
    pods = [head["template"]["spec"]] + [g["template"]["spec"] for g in spec["workerGroupSpecs"]]
    for pod in pods:
        assert pod["serviceAccountName"] == account["name"]
        for container in pod["containers"] + pod.get("initContainers", []):
            assert container["image"].startswith(f"rayproject/ray:{locked_ray()}-py311-")
            assert not any("AWS_" in e["name"] for e in container.get("env", []))
    gpus = set()
    for group in spec["workerGroupSpecs"]:
        assert group["minReplicas"] == 0 == group["replicas"] and group["maxReplicas"] >= 1
        (worker,) = group["template"]["spec"]["containers"]
        limit = worker["resources"]["limits"]["nvidia.com/gpu"]
        assert worker["resources"]["requests"]["nvidia.com/gpu"] == limit
        assert "-cu" in worker["image"]
        gpus.add(limit)
    assert gpus == {1, 4}


def test_lock_satisfies_pyproject():
    """Every requirement of pyproject.toml (and its test extra) holds at the locked version."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked = {**lock_pins(ROOT / "requirements.lock"), **lock_pins(ROOT / "constraints.txt")}
    for line in project["dependencies"] + project["optional-dependencies"]["test"]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{name} is in pyproject.toml but not in requirements.lock: run `make lock`"
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"requirements.lock has {name}=={locked[name]}, pyproject.toml asks {requirement}: run `make lock`")


def test_cluster_lock_is_the_projects_lock():
    """The nodes' lock is the runtime part of requirements.lock, version for version."""
    dev, cluster = lock_pins(ROOT / "requirements.lock"), lock_pins(CLUSTER / "requirements.lock")
    assert {"ray", "optuna", "librosa", "pandas", "pyarrow"} <= set(cluster)
    assert "pytest" not in cluster, "cluster/requirements.lock must not carry the test extra: run `make lock`"
    differ = {name: (version, dev.get(name)) for name, version in cluster.items() if dev.get(name) != version}
    assert not differ, f"cluster/requirements.lock differs from requirements.lock {differ}: run `make lock`"


def test_installed_environment_is_the_lock():
    """What the tests run on is exactly what the lock says (torch: constraints.txt's version, any build)."""
    from importlib.metadata import PackageNotFoundError, version

    wanted = {**lock_pins(ROOT / "requirements.lock"), **lock_pins(ROOT / "constraints.txt")}
    differ = {}
    for name, pinned in wanted.items():
        try:
            installed = version(name).split("+")[0]
        except PackageNotFoundError:
            installed = None
        if installed != pinned:
            differ[name] = (pinned, installed)
    assert not differ, f"installed versions differ from the lock (locked, installed) {differ}: run `make setup`"


@pytest.mark.parametrize("name", ["gpu.yaml", "local.yaml", "kuberay.yaml"])
def test_cluster_configs_install_the_lock_and_type_no_pin(name):
    """Nodes read the pins from the copied locks; a version typed into a YAML would drift from them."""
    text = (CLUSTER / name).read_text()
    typed = [f"{p}=={v}" for p, v in PIN.findall(text)]
    assert not typed, f"{name} types pins {typed}: install from cluster/requirements.lock instead"
    assert "constraints.txt torch" in text, f"{name} must install torch at constraints.txt's version"
    assert "requirements.lock" in text
    assert text.count("rayproject/ray:") == text.count(f"rayproject/ray:{locked_ray()}-"), (
        f"{name}'s images must carry the locked ray {locked_ray()}")


# The one supported GPU stack, as cluster/README.md ("GPU stack") states it.
STACK_CUDA, STACK_DRIVER, STACK_IMAGE_TAG = "13.0", 580, "-py311-cu130"
GPU_AMI_PARAMETER = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"
STALE = re.compile(r"cu1[12]\d|CUDA 1[12]\.\d|(?:>=|≥) ?5[0-7]\d|ImageId: latest_dlami")
"""Another CUDA build, an older driver floor, or Ray's default (Ubuntu 18.04, CUDA 11) AMI."""


def test_readme_states_the_one_gpu_stack_and_how_to_check_a_node():
    from audiostyle.sweep._gpu import GPU_CHECK

    text = (CLUSTER / "README.md").read_text()
    stack = text[text.index("## GPU stack"):text.index("## AWS: the whole path")]
    for fact in (f"CUDA {STACK_CUDA}", f"≥ {STACK_DRIVER}", f"rayproject/ray:{locked_ray()}{STACK_IMAGE_TAG}",
                 GPU_AMI_PARAMETER, "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04)"):
        assert fact in stack, fact
    assert GPU_CHECK.removeprefix("python -c ") in stack
    assert lock_pins(ROOT / "constraints.txt")["torch"] in stack


@pytest.mark.parametrize("name", ["gpu.yaml", "kuberay.yaml", "local.yaml", "README.md"])
def test_every_cluster_file_asks_for_the_one_gpu_stack(name):
    text = (CLUSTER / name).read_text()
    assert not STALE.findall(text), f"{name} names another CUDA build, driver or image: {STALE.findall(text)}"
    images = re.findall(r"rayproject/ray:[\w.\-]+", text)
    gpu_images = [i for i in images if not i.endswith("-cpu")]
    assert all(i == f"rayproject/ray:{locked_ray()}{STACK_IMAGE_TAG}" for i in gpu_images), gpu_images
    assert "download.pytorch.org/whl/cu" not in text, "GPU nodes install PyPI's default (CUDA 13.0) torch build"
    assert (f"≥ {STACK_DRIVER}" if name == "README.md" else f">= {STACK_DRIVER}") in text


def test_gpu_yaml_launches_every_node_from_the_gpu_stacks_image():
    config = prepared("gpu.yaml")
    assert {t["node_config"]["ImageId"] for t in config["available_node_types"].values()} == {
        f"resolve:ssm:{GPU_AMI_PARAMETER}"}


def iam_documents(account: str, bucket: str) -> dict[str, str]:
    """cluster/iam/*.json with the placeholders filled, as cluster/README.md's commands fill them."""
    return {p.stem: p.read_text().replace("ACCOUNT_ID", account).replace("YOUR-BUCKET", bucket)
            for p in sorted((CLUSTER / "iam").glob("*.json"))}


def test_head_policy_passes_the_workers_role_and_resolves_the_gpu_image():
    import json

    config = load("gpu.yaml")
    statements = json.loads(iam_documents("123456789012", "b")["head-policy"])["Statement"]
    allowed = {(a, r) for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
               for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])}
    workers = {t["node_config"]["IamInstanceProfile"]["Name"] for n, t in config["available_node_types"].items()
               if n != config["head_node_type"]}
    assert {("iam:PassRole", f"arn:aws:iam::123456789012:role/{w}") for w in workers} <= allowed
    assert ("ssm:GetParameters", f"arn:aws:ssm:*::parameter{GPU_AMI_PARAMETER}") in allowed
    assert ("ec2:RunInstances", "*") in allowed


@pytest.mark.slow
def test_gpu_yaml_bootstraps_against_a_mock_aws(s3_server, monkeypatch, tmp_path):
    """`ray up`'s AWS bootstrap (IAM, key pair, subnets, security group, AMI) run against moto on 127.0.0.1."""
    import boto3
    from ray.autoscaler._private.aws.config import bootstrap_aws

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("HOME", str(tmp_path))  # Ray writes the cluster's ssh key under ~/.ssh
    config = prepared("gpu.yaml")
    config["cluster_name"] = f"audiostyle-{tmp_path.name[-12:]}"
    region = config["provider"]["region"]
    iam = boto3.client("iam", region_name=region)
    # The account as cluster/README.md's commands leave it: both roles and profiles, their policies from
    # cluster/iam/ (moto validates the policy documents). Ray then creates no role of its own.
    account = boto3.client("sts", region_name=region).get_caller_identity()["Account"]
    documents = iam_documents(account, "audiostyle-results")
    for name in ("head", "worker"):
        role = f"audiostyle-{name}"
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=documents["ec2-trust"])
        iam.put_role_policy(RoleName=role, PolicyName=role, PolicyDocument=documents[f"{name}-policy"])
        iam.create_instance_profile(InstanceProfileName=role)
        iam.add_role_to_instance_profile(InstanceProfileName=role, RoleName=role)

    booted = bootstrap_aws(copy.deepcopy(config))

    assert "ray-autoscaler-v1" not in {r["RoleName"] for r in iam.list_roles()["Roles"]}
    groups = set()
    for name, node_type in booted["available_node_types"].items():
        node = node_type["node_config"]
        # the GPU stack's image, resolved by EC2 at launch: not replaced by Ray's Ubuntu 18.04 default
        assert node["ImageId"] == f"resolve:ssm:{GPU_AMI_PARAMETER}" and node["SubnetIds"] and node["KeyName"]
        profile = "head" if name == booted["head_node_type"] else "worker"
        assert node["IamInstanceProfile"] == {"Name": f"audiostyle-{profile}"}
        groups.update(node["SecurityGroupIds"])
    assert Path(booted["auth"]["ssh_private_key"]).is_file()
    (group,) = boto3.client("ec2", region_name=region).describe_security_groups(GroupIds=sorted(groups))[
        "SecurityGroups"]
    from_outside = [p for p in group["IpPermissions"] if p.get("IpRanges") or p.get("Ipv6Ranges")]
    assert [(p["FromPort"], p["ToPort"]) for p in from_outside] == [(22, 22)], "only ssh is open to the outside"
    assert all(g["GroupId"] == group["GroupId"] for p in group["IpPermissions"] for g in p.get("UserIdGroupPairs", []))
