"""The part of Kustomize that deploy/kubernetes uses, to render its overlays without kubectl:
``resources`` (files and kustomization folders), ``namespace``, ``images`` and ``patches``
(JSON 6902 with a kind/name target, and ``$patch: delete`` of a whole resource). A
kustomization that uses anything else is refused, so what the tests check is what
``kubectl apply -k`` would apply."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonpatch
import yaml

KNOWN = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
CLUSTER_SCOPED = {"Namespace", "PersistentVolume", "StorageClass", "ClusterRole", "ClusterRoleBinding"}


class UnsupportedKustomization(Exception):
    pass


def render(folder: Path) -> list[dict]:
    """The documents ``kubectl kustomize folder`` prints, in the order of ``resources``."""
    folder = Path(folder)
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(spec) - KNOWN
    if unknown:
        raise UnsupportedKustomization(f"{folder}: {sorted(unknown)} are not rendered by this test helper")
    docs: list[dict] = []
    for entry in spec.get("resources", []):
        path = (folder / entry).resolve()
        if path.is_dir():
            docs.extend(render(path))
        else:
            docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    for patch in spec.get("patches", []):
        docs = _patched(docs, patch, folder)
    if "namespace" in spec:
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = spec["namespace"]
    for image in spec.get("images", []):
        for container in _containers(docs):
            name, _, tag = container["image"].partition(":")
            if name == image["name"]:
                name = image.get("newName", name)
                tag = image.get("newTag", tag)
                container["image"] = f"{name}:{tag}" if tag else name
    return docs


def _patched(docs: list[dict], patch: dict, folder: Path) -> list[dict]:
    if set(patch) - {"patch", "target"}:
        raise UnsupportedKustomization(f"{folder}: patch keys {sorted(patch)}")
    body = yaml.safe_load(patch["patch"])
    if isinstance(body, dict):  # a strategic-merge patch: only whole-resource deletion here
        if body.get("$patch") != "delete" or len(body) != 4:
            raise UnsupportedKustomization(f"{folder}: strategic-merge patches other than $patch: delete")
        kept = [d for d in docs if not _same(d, body["kind"], body["metadata"]["name"])]
        if len(kept) != len(docs) - 1:
            raise UnsupportedKustomization(f"{folder}: $patch: delete matches no resource")
        return kept
    target = patch["target"]
    if set(target) - {"kind", "name"}:
        raise UnsupportedKustomization(f"{folder}: target keys {sorted(target)}")
    out, hits = [], 0
    for doc in docs:
        if _same(doc, target["kind"], target["name"]):
            doc = jsonpatch.apply_patch(copy.deepcopy(doc), body)
            hits += 1
        out.append(doc)
    if hits != 1:
        raise UnsupportedKustomization(f"{folder}: patch target {target} matches {hits} resources")
    return out


def _same(doc: dict, kind: str, name: str) -> bool:
    return doc["kind"] == kind and doc["metadata"]["name"] == name


def _containers(docs: list[dict]):
    for doc in docs:
        spec = doc.get("spec", {})
        pod = spec.get("template", {}).get("spec", spec)
        yield from pod.get("initContainers", [])
        yield from pod.get("containers", [])
