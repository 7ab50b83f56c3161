"""Delete all but the newest KEEP tags of each image in the fleet's registry (adelie.fleet.registry).

The newest by the image's creation time (its config's "created"). A manifest is deleted by digest, so a
digest that a kept tag also names is left alone. Prints one line per image: kept and deleted tags.
The unit that runs this then collects the unreferenced blobs (docker-registry garbage-collect).
"""
import argparse
import json
import ssl
import sys
import urllib.error
import urllib.request

MANIFEST_TYPES = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
])


def request(base, context, path, method="GET", accept=None):
    req = urllib.request.Request(base + path, method=method)
    if accept:
        req.add_header("Accept", accept)
    with urllib.request.urlopen(req, context=context, timeout=30) as response:  # noqa: S310 (https only)
        body = response.read()
        return response.headers, json.loads(body) if body and method == "GET" else None


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--registry", required=True, help="https://address:port")
    parser.add_argument("--ca", required=True, help="the fleet CA's certificate")
    parser.add_argument("--keep", type=int, required=True)
    args = parser.parse_args()
    if args.keep < 1:
        parser.error("--keep must be 1 or more")
    context = ssl.create_default_context(cafile=args.ca)
    base = args.registry.rstrip("/")
    # 1000: distribution 2.8 refuses a larger page.
    repositories = request(base, context, "/v2/_catalog?n=1000")[1].get("repositories") or []
    for repo in repositories:
        tags = request(base, context, "/v2/%s/tags/list" % repo)[1].get("tags") or []
        images = []
        for tag in tags:
            headers, manifest = request(base, context, "/v2/%s/manifests/%s" % (repo, tag), accept=MANIFEST_TYPES)
            config = request(base, context, "/v2/%s/blobs/%s" % (repo, manifest["config"]["digest"]))[1]
            images.append((config.get("created", ""), tag, headers["Docker-Content-Digest"]))
        images.sort(reverse=True)
        kept, old = images[:args.keep], images[args.keep:]
        kept_digests = {image[2] for image in kept}
        deleted = []
        for _created, tag, digest in old:
            if digest in kept_digests:
                continue
            try:
                request(base, context, "/v2/%s/manifests/%s" % (repo, digest), method="DELETE")
            except urllib.error.HTTPError as error:
                if error.code != 404:  # a digest two old tags share is gone after the first
                    raise
            deleted.append(tag)
        print("%s: kept %s; deleted %s" % (repo, " ".join(image[1] for image in kept) or "-", " ".join(deleted) or "-"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
