"""Rewrite a crnn model file's model.json (the arrays and their checksums
kept as they are): what a hostile file's author can do without touching
the arrays."""
import json
import zipfile


def rewrite_manifest(src, dst, edit):
    """Copy the model file src to dst with edit(manifest) applied to its
    parsed model.json; returns dst."""
    with zipfile.ZipFile(src) as z:
        members = {n: z.read(n) for n in z.namelist()}
    manifest = json.loads(members["model.json"])
    edit(manifest)
    with zipfile.ZipFile(dst, "w") as z:
        z.writestr("model.json", json.dumps(manifest))
        for n, b in members.items():
            if n != "model.json":
                z.writestr(n, b)
    return dst
