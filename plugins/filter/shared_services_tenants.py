# Copyright: (c) 2026, Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the shared services: the tenants named from the fleet model, and their bucket names."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.adelie.fleet.plugins.module_utils.shared_services import (
    DEFAULT_ENVIRONMENTS, TenantError, bucket_name, tenant_for_node, tenants)

DOCUMENTATION = r"""
name: shared_services_tenants
short_description: The shared services' tenants of a fleet model
version_added: 0.2.0
author: Adelie infra team (@adelie)
description:
  - Gives one tenant per teammate (C(dev_<login>)) and per environment node role listed in O(environments),
    each C({name, kind, login, node, nodes}), sorted by name. Fails when two would share a name.
  - Companion filters in this file, documented each on its own, C(shared_services_tenant) and
    C(shared_services_bucket).
  - The roles read the tenants from the fleet model (C(fleet_model.tenants), each node's C(fleet_node.tenant)),
    which names them with the same code.
options:
  _input:
    description: The fleet model's C(nodes).
    type: dict
    required: true
  environments:
    description: Node roles that are environments (their tenant is the role's name).
    type: list
    elements: str
    default: [deploy, staging]
"""

EXAMPLES = r"""
- name: Names of the databases
  ansible.builtin.debug:
    msg: "{{ fleet_model.nodes | adelie.fleet.shared_services_tenants(['deploy', 'staging']) | map(attribute='name') }}"
"""

RETURN = r"""
_value:
  description: The tenants.
  type: list
  elements: dict
"""


def _tenants(nodes, environments=DEFAULT_ENVIRONMENTS, member_prefix="dev_"):
    try:
        return tenants(nodes, list(environments), member_prefix)
    except TenantError as error:
        raise AnsibleFilterError(str(error)) from None


def _tenant(node, environments=DEFAULT_ENVIRONMENTS, member_prefix="dev_"):
    return tenant_for_node(node, list(environments), member_prefix)


class FilterModule:
    def filters(self):
        return {"shared_services_tenants": _tenants, "shared_services_tenant": _tenant,
                "shared_services_bucket": bucket_name}
