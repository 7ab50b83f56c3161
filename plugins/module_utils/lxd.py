# -*- coding: utf-8 -*-
# Copyright: Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's LXD/Incus modules reach their daemon here: community.general's REST client over the unix
socket (the same client its lxd_* modules use; Python's standard library only), so the LXD host needs no
pylxd, whether it is the controller or a remote host."""

from __future__ import annotations

from urllib.parse import quote

from ansible_collections.adelie.fleet.plugins.module_utils.backend import backend
from ansible_collections.community.general.plugins.module_utils.lxd import LXDClient, LXDClientException

__metaclass__ = type


LXD_COMMON_ARGS = dict(
    project=dict(type="str", default="default"),
    socket=dict(type="path"),
)


def lxd_client(module):
    """A client over the given unix socket (callers pass the model's, fleet_model.backend.socket), else the
    default backend's of module_utils/backend.py."""
    return LXDClient("unix:" + (module.params.get("socket") or backend()["socket"]))


def api(module, client, method, path, body=None, what=None):
    """The metadata of path in the module's project (an operation waited for); None when it does not exist
    (404). Any other error fails the module, naming what was being done."""
    url = "%s%sproject=%s" % (path, "&" if "?" in path else "?", quote(module.params["project"], safe=""))
    try:
        answer = client.do(method, url, body_json=body, ok_error_codes=[404])
    except LXDClientException as error:
        module.fail_json(msg="%s failed: %s" % (what or "%s %s" % (method, path), error.msg))
    if answer.get("type") == "error":
        return None
    return answer.get("metadata")
