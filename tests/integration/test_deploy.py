"""deploy.yml and rollback.yml on the test fleet's staging and deploy nodes, through the fleet's registry (issue 19).

Commits are pushed as branches of the lab's fixture repository (the one the nodes clone): a harmless change,
a second one, and one whose backend fails its healthcheck. Everything is judged from outside the playbooks:
the registry's API, `docker` on the nodes, the backend's answer, the webhook listener, the host's files and
Prometheus. The tests run in file order and share the commits.
"""
from __future__ import annotations

import json
import os
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest
from conftest import GATEWAY, RECEIVER_PORT, eventually

# The fixture's bare repository on the host (roles/lab_fixture_app: lab_fixture_app_repo_dir).
APP_REPO = "/srv/git/fleet-app.git"
BRANCHES = ("deploy-test-good", "deploy-test-good2", "deploy-test-bad")
HISTORY = "/var/lib/adelie-fleet/releases/fleet-test/%s.json"
PROM = "/var/lib/prometheus/node-exporter/adelie_fleet_release_fleet-test_%s.prom"


def git(*args, cwd=None):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True, env=env).stdout.strip()


def forget_releases():
    subprocess.run("rm -rf %s %s" % (os.path.dirname(HISTORY), PROM % "*"), shell=True, check=True)  # noqa: S602


@pytest.fixture(scope="module")
def commits(lab, tmp_path_factory):
    """{good, good2, bad}: three commits on top of the fixture's main, each pushed as its own branch. Afterwards
    the environments run the fixture's own images again (the later tests expect them) and the history goes."""
    forget_releases()
    clone = tmp_path_factory.mktemp("app") / "app"
    git("clone", "-q", APP_REPO, str(clone))
    found = {}
    for name, branch in zip(("good", "good2", "bad"), BRANCHES):
        if name == "bad":
            script = clone / "backend-api" / "healthcheck.sh"
            lines = script.read_text().splitlines(True)
            script.write_text(lines[0] + 'echo "unhealthy: broken on purpose" >/www/health; exit 1\n' + "".join(lines[1:]))
        else:
            page = clone / "frontend" / "index.html"
            page.write_text(page.read_text() + "<!-- %s -->\n" % name)
        git("commit", "-qam", "deploy test: %s" % name, cwd=clone)
        git("push", "-q", "origin", "HEAD:refs/heads/" + branch, cwd=clone)
        found[name] = git("rev-parse", "HEAD", cwd=clone)
    yield found
    for branch in BRANCHES:
        subprocess.run(["git", "-C", APP_REPO, "branch", "-D", branch], capture_output=True, check=False)
    for node in ("ft-staging", "ft-deploy"):
        lab.exec(node, "cd %s && rm -f docker-compose.override.yml && docker-compose -p fleet-app up -d"
                 % lab.nodes[node]["app_dir"], check=True)
    forget_releases()


def model(lab):
    from conftest import inventory_model
    return inventory_model(str(lab.inventory))


def registry_get(lab, path, trusted=True):
    """GET the fleet registry's API from the host, trusting the fleet's CA (or the system's only)."""
    context = ssl.create_default_context(cafile=os.path.expanduser(model(lab)["ca_dir"] + "/ca.crt") if trusted else None)
    url = "https://%s%s" % (model(lab)["registry"]["host"], path)
    with urllib.request.urlopen(url, context=context, timeout=10) as response:  # noqa: S310 (the test fleet's registry)
        return json.load(response)


def running(lab, node):
    """{service: image} of the app's running containers on the node."""
    out = lab.exec(node, "docker ps --filter label=com.docker.compose.project=fleet-app "
                         "--format '{{.Label \"com.docker.compose.service\"}} {{.Image}}'", check=True).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


def health(lab, node):
    """The backend's /health as the host reads it, and its container's healthcheck state."""
    try:
        with urllib.request.urlopen("http://%s:8000/health" % lab.address(node), timeout=5) as response:  # noqa: S310
            body = response.read().decode().strip()
    except OSError as error:
        body = str(error)
    state = lab.exec(node, "docker inspect --format '{{.State.Health.Status}}' "
                           "$(docker ps -q --filter label=com.docker.compose.service=backend-api)").stdout.strip()
    return body, state


def posts(receiver, env, outcome):
    """The webhook's Discord embeds for env with that outcome."""
    found = []
    for _time, path, body in receiver.posts:
        if path != "/deploy":
            continue
        fields = {field["name"]: field["value"] for field in body["embeds"][0]["fields"]}
        if fields["env"] == env and fields["outcome"] == outcome:
            found.append(fields)
    return found


def deploy(lab, env, ref, *args):
    return lab.playbook("playbooks/deploy.yml", "-e", "env=%s" % env, "-e", "ref=%s" % ref, *args)


def images(lab, commit):
    host = model(lab)["registry"]["host"]
    return {service: "%s/fleet-app/%s:%s" % (host, service, commit) for service in ("frontend", "backend-api")}


def test_a_good_commit_is_built_once_deployed_to_staging_then_promoted(lab, commits, receiver):
    result = deploy(lab, "staging", "deploy-test-good")
    assert result.rc == 0, str(result)
    good = images(lab, commits["good"])
    assert running(lab, "ft-staging") == good
    assert health(lab, "ft-staging") == ("ok", "healthy")
    # Pushed to the registry under the commit.
    assert commits["good"] in registry_get(lab, "/v2/fleet-app/backend-api/tags/list")["tags"]

    result = deploy(lab, "deploy", commits["good"])
    assert result.rc == 0, str(result)
    # Built once: the promotion pulled the very images staging runs (a second build would differ in its Id).
    assert running(lab, "ft-deploy") == good
    digests = {node: lab.exec(node, "docker image inspect --format '{{.Id}} {{index .RepoDigests 0}}' "
                                    + good["backend-api"], check=True).stdout for node in ("ft-staging", "ft-deploy")}
    assert digests["ft-staging"] == digests["ft-deploy"], digests
    assert health(lab, "ft-deploy") == ("ok", "healthy")
    # Announced, with the commit; recorded on the host.
    assert [f["commit"] for f in posts(receiver, "staging", "deployed")] == [commits["good"]]
    assert [f["commit"] for f in posts(receiver, "deploy", "deployed")] == [commits["good"]]
    history = json.loads(open(HISTORY % "deploy", encoding="utf-8").read())["releases"]
    assert (history[-1]["commit"], history[-1]["outcome"]) == (commits["good"], "deployed")


def test_a_commit_that_never_passed_staging_is_refused_for_deploy(lab, commits):
    result = deploy(lab, "deploy", "deploy-test-good2")
    assert result.rc != 0
    assert "never passed staging" in result.out and commits["good2"] in result.out
    assert running(lab, "ft-deploy") == images(lab, commits["good"])


def test_a_failing_commit_is_rolled_back_by_itself(lab, commits, receiver):
    result = deploy(lab, "staging", "deploy-test-bad")
    assert result.rc != 0, str(result)
    assert "rolled back" in result.out
    # The previous release runs again and answers.
    assert running(lab, "ft-staging") == images(lab, commits["good"])
    assert health(lab, "ft-staging") == ("ok", "healthy")
    [fields] = posts(receiver, "staging", "rolled_back")
    # The gate's evidence: the backend never said healthy (starting, then unhealthy) before the tries ran out.
    assert fields["commit"] == commits["bad"] and "FAIL after" in fields["gate"], fields
    assert "container healthy" not in fields["gate"], fields
    prom = open(PROM % "staging", encoding="utf-8").read()
    assert 'adelie_fleet_release_last_outcome{env="staging",node="ft-staging",outcome="rolled_back"} 1' in prom
    # Prometheus has it from the host's node-exporter: the series DeployRolledBack fires on (the rule itself is
    # promtool-tested, tests/unit/prometheus/deploy.test.yml; waiting out its `for: 1m` here would cost a minute).
    assert eventually(lambda: len(lab.query('adelie_fleet_release_last_outcome{node="ft-staging",outcome="rolled_back"} == 1')),
                      1, timeout=60) == 1


def test_rollback_goes_back_to_the_previous_release_and_keeps_secrets_out_of_the_output(lab, commits, receiver):
    # The second good commit, announced to a webhook that refuses it (nothing listens on port 9): that never
    # fails a deploy.
    result = deploy(lab, "staging", "deploy-test-good2", "-e", "deploy_webhook_url=http://%s:9/deploy" % GATEWAY)
    assert result.rc == 0, str(result)
    assert "the webhook did not take the deployed message" in result.out
    assert running(lab, "ft-staging") == images(lab, commits["good2"])

    result = lab.playbook("playbooks/rollback.yml", "-e", "env=staging", "-vvv")
    assert result.rc == 0, str(result)
    assert running(lab, "ft-staging") == images(lab, commits["good"])
    assert health(lab, "ft-staging") == ("ok", "healthy")
    history = json.loads(open(HISTORY % "staging", encoding="utf-8").read())["releases"]
    assert (history[-1]["commit"], history[-1]["via"], history[-1]["from"]) == (commits["good"], "rollback", commits["good2"])
    assert posts(receiver, "staging", "deployed")[-1]["commit"] == commits["good"]
    # The webhook's URL is a secret: not in the verbose output.
    assert "%s:%d/deploy" % (GATEWAY, RECEIVER_PORT) not in result.out


def test_the_registry_is_on_the_bridge_only_and_needs_the_fleets_trust(lab):
    registry = model(lab)["registry"]
    listening = lab.exec(registry["node"], "ss -ltnH", check=True).stdout
    ports = {line.split()[3] for line in listening.splitlines() if line.split()[3].endswith((":5000", ":5001"))}
    assert ports == {registry["address"] + ":5000", registry["address"] + ":5001"}, listening
    # Without the fleet's CA, TLS refuses the registry, from the host and from a node's engine.
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        registry_get(lab, "/v2/_catalog", trusted=False)
    certs = "/etc/docker/certs.d/%s" % registry["host"]
    image = images(lab, "missing")["frontend"]
    try:
        lab.exec("ft-dev1", "mv %s %s.off" % (certs, certs), check=True)
        pulled = lab.exec("ft-dev1", "docker pull " + image)
        assert pulled.returncode != 0 and "certificate signed by unknown authority" in pulled.stderr, pulled
    finally:
        lab.exec("ft-dev1", "mv %s.off %s" % (certs, certs), check=True)
    pulled = lab.exec("ft-dev1", "docker pull " + image)
    assert "certificate" not in pulled.stderr and "manifest unknown" in pulled.stderr, pulled
    # Prometheus scrapes the registry's debug endpoint.
    assert eventually(lambda: lab.target_health("registry"), {registry["node"]: "up"}, timeout=60) == {registry["node"]: "up"}


def retention_tags(lab):
    """The test image's tags, or None while the registry does not answer."""
    try:
        return sorted(registry_get(lab, "/v2/fleet-test/retention/tags/list")["tags"] or [])
    except OSError:
        return None


def test_the_nightly_pruning_keeps_the_newest_tags(lab, commits):
    registry = model(lab)["registry"]
    repo = "%s/fleet-test/retention" % registry["host"]
    for tag in range(1, 5):
        built = lab.exec("ft-staging", "printf 'FROM fleet/base:local\\nLABEL n=%d\\n' | docker build -q -t %s:%d - "
                                       "&& docker push -q %s:%d" % (tag, repo, tag, repo, tag))
        assert built.returncode == 0, built.stderr
    assert sorted(registry_get(lab, "/v2/fleet-test/retention/tags/list")["tags"]) == ["1", "2", "3", "4"]
    pruned = lab.exec(registry["node"], "systemctl start adelie-fleet-registry-prune.service")
    assert pruned.returncode == 0, pruned.stderr
    assert lab.exec(registry["node"], "systemctl is-active docker-registry").stdout.strip() == "active"
    # The unit starts the registry again as it ends; it answers a moment later.
    tags = eventually(lambda: retention_tags(lab), ["2", "3", "4"], timeout=30)
    assert tags == ["2", "3", "4"]
    # The releases' images (3 tags each) are all kept, and the collected blobs are gone from the disk.
    assert set(commits.values()) <= set(registry_get(lab, "/v2/fleet-app/backend-api/tags/list")["tags"])
    journal = lab.exec(registry["node"], "journalctl -u adelie-fleet-registry-prune -o cat --no-pager | tail -n 40").stdout
    assert "fleet-test/retention: kept 4 3 2; deleted 1" in journal, journal
    assert "blob eligible for deletion" in journal or "Deleting blob" in journal, journal
