# -*- coding: utf-8 -*-
# Copyright: Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared pylxd access for the collection's LXD modules: one client, one import guard."""

from __future__ import annotations

import traceback

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.adelie.fleet.plugins.module_utils.backend import backend

__metaclass__ = type

try:
    import pylxd
    from pylxd.exceptions import LXDAPIException, NotFound
except ImportError:
    pylxd = None
    PYLXD_IMPORT_ERROR = traceback.format_exc()

    class LXDAPIException(Exception):
        """Stands in for pylxd's so that except clauses still parse without pylxd."""

    class NotFound(LXDAPIException):
        """Stands in for pylxd's."""
else:
    PYLXD_IMPORT_ERROR = None

LXD_COMMON_ARGS = dict(
    project=dict(type="str", default="default"),
    socket=dict(type="path"),
)


def lxd_client(module):
    """A pylxd client for the module's project, over the given unix socket (callers pass the model's,
    fleet_model.backend.socket), else the default backend's of module_utils/backend.py."""
    if pylxd is None:
        module.fail_json(msg=missing_required_lib("pylxd"), exception=PYLXD_IMPORT_ERROR)
    try:
        return pylxd.Client(endpoint=module.params.get("socket") or backend()["socket"], project=module.params["project"])
    except Exception as error:  # pylxd raises several kinds when the daemon is unreachable
        module.fail_json(msg="cannot reach LXD: %s" % error)


def get_instance(module, client, name):
    """The instance, or a clear failure naming it and its project."""
    try:
        return client.instances.get(name)
    except NotFound:
        module.fail_json(msg="no instance %s in LXD project %s" % (name, module.params["project"]))
    except LXDAPIException as error:
        module.fail_json(msg="LXD refused to read instance %s: %s" % (name, error))
