#!/usr/bin/env python3
"""Packs one static executable as a single-layer container image archive, with the standard
library only (no registry, no docker, no buildah).

    image.py --binary pause --tag localhost/podwire-pause:1 --out pause.tar

The archive is the Docker "save" layout that `ctr images import` (and `podman load`) read:

    manifest.json           [{"Config": "<sha256>.json", "RepoTags": [TAG], "Layers": ["<sha256>/layer.tar"]}]
    <sha256>.json           the image config: os, architecture, config.Entrypoint, rootfs.diff_ids
    <sha256>/layer.tar      an uncompressed tar holding the executable at /<name>, mode 0755

Every digest is the sha256 of the exact bytes it names (the layer's diff_id is the digest of the
uncompressed layer tar, which is also what the file is), and every timestamp is 0, so the same
binary always gives the same archive, byte for byte.
"""
import argparse
import hashlib
import io
import json
import os
import platform
import sys
import tarfile

# Go's GOARCH names, which image configs use.
ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x",
                 "riscv64": "riscv64"}


def tar_member(name, data, mode):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info, io.BytesIO(data)


def tar_bytes(members):
    """An uncompressed ustar archive of (name, bytes, mode) members, in order."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data, mode in members:
            archive.addfile(*tar_member(name, data, mode))
    return buffer.getvalue()


def canonical(document):
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def build(binary, tag, entrypoint_name=None, architecture=None):
    """The archive's bytes and the image's config digest ("sha256:<hex>")."""
    with open(binary, "rb") as handle:
        program = handle.read()
    name = entrypoint_name or os.path.basename(binary)
    layer = tar_bytes([(name, program, 0o755)])
    layer_hex = hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": architecture or ARCHITECTURES.get(platform.machine(), platform.machine()),
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {"Entrypoint": ["/" + name], "WorkingDir": "/",
                   "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + layer_hex]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "Tests/Runtimes/image.py " + name}],
    }
    config_bytes = canonical(config)
    config_hex = hashlib.sha256(config_bytes).hexdigest()
    manifest = [{"Config": config_hex + ".json", "RepoTags": [tag], "Layers": [layer_hex + "/layer.tar"]}]
    archive = tar_bytes([
        (config_hex + ".json", config_bytes, 0o644),
        (layer_hex + "/layer.tar", layer, 0o644),
        ("manifest.json", canonical(manifest), 0o644),
    ])
    return archive, "sha256:" + config_hex


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", required=True, help="the static executable to put at /<name>")
    parser.add_argument("--tag", required=True, help="image reference, e.g. localhost/podwire-pause:1")
    parser.add_argument("--out", required=True, help="where to write the archive")
    parser.add_argument("--name", help="file name in the image (default: the binary's)")
    args = parser.parse_args(argv)
    archive, image_id = build(args.binary, args.tag, args.name)
    temporary = args.out + ".partial"
    with open(temporary, "wb") as handle:
        handle.write(archive)
    os.replace(temporary, args.out)
    print(json.dumps({"archive": args.out, "tag": args.tag, "id": image_id}))


if __name__ == "__main__":
    main(sys.argv[1:])
