# -*- coding: utf-8 -*-
# Copyright: Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = """
    name: mitogen_linear
    short_description: Mitogen's linear strategy without its CPU pinning
    description:
        - Mitogen's C(mitogen_linear) (the C(mitogen) package of requirements.txt), whose hosts keep one Python
          interpreter each for the run, with one change. Mitogen pins its processes to CPUs, and below 4 CPUs it
          puts Ansible's top-level process and every worker on one CPU, the connection multiplexer on another.
          Here nothing is pinned and the kernel schedules them on every CPU.
        - Measured on the lab (2 CPUs, 2026-12-07), the idempotent C(site.yml) took 36 s unpinned against 48-50 s
          pinned (bench/RESULTS.md).
    version_added: 0.2.0
    author: Adelie infra team (@adelie)
"""

from ansible.errors import AnsibleError

try:
    import ansible_mitogen.affinity
    import ansible_mitogen.loaders
    import ansible_mitogen.strategy
except ImportError:
    # Enough to load the plugin (ansible-doc, sanity); a run says what is missing.
    HAS_MITOGEN = False
    from ansible.plugins.strategy.linear import StrategyModule as Base

    class Mitogen:
        pass
else:
    HAS_MITOGEN = True
    Base = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)
    Mitogen = ansible_mitogen.strategy.StrategyMixin


class StrategyModule(Mitogen, Base):
    def run(self, iterator, play_context):
        if not HAS_MITOGEN:
            raise AnsibleError("adelie.fleet.mitogen_linear needs the mitogen package (requirements.txt), "
                               "or run with ANSIBLE_STRATEGY=linear")
        # The base Policy pins nothing; Mitogen looks the policy up on its module each time it pins a
        # process (the controller's when its first play starts, then each worker's).
        ansible_mitogen.affinity.policy = ansible_mitogen.affinity.Policy()
        return super().run(iterator, play_context)
