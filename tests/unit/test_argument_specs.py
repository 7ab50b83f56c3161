"""Every role documents its variables where Ansible validates them (prometheus-community/ansible
checks its roles the same way): each variable of defaults/main.yml is an option of the `main`
entry point of meta/argument_specs.yml with an equal `default:`, and no entry point states a
default that defaults/main.yml does not have, or a different one.

Jinja defaults are tagged `!unsafe` in the specs (Ansible then shows them and does not evaluate
them); they compare as the plain template string.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES_DIR = Path(__file__).resolve().parents[2] / "roles"
ROLES = sorted(path.name for path in ROLES_DIR.iterdir() if (path / "tasks").is_dir())

# Variables the main entry point cannot list, with the entry point that documents them instead:
# the validation evaluates every option its entry point lists, and these exist only once main
# has run (they read the fleet model main registers on the LXD host).
ENTRY_POINT_ONLY = {
    "lxd_fleet": {"lxd_fleet_node": "containers", "lxd_fleet_node_network": "containers"},
}


class _Loader(yaml.SafeLoader):
    """YAML as Ansible reads these files, minus its tags' meaning: !unsafe is a plain string."""


_Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def _load(path):
    if not path.exists():
        return None
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 (a SafeLoader)


def _defaults(role):
    return _load(ROLES_DIR / role / "defaults" / "main.yml") or {}


def _specs(role):
    data = _load(ROLES_DIR / role / "meta" / "argument_specs.yml")
    assert data and "main" in data.get("argument_specs", {}), "%s has no meta/argument_specs.yml with main" % role
    return data["argument_specs"]


def test_every_role_is_checked():
    assert "apt_cache" in ROLES and "internal_release_binary" in ROLES and len(ROLES) >= 10, ROLES


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_documented_with_its_value(role):
    specs = _specs(role)
    for name, value in _defaults(role).items():
        entry = ENTRY_POINT_ONLY.get(role, {}).get(name, "main")
        option = specs[entry].get("options", {}).get(name)
        assert option is not None, "%s: %s is in defaults/main.yml but not in the %s entry point" % (role, name, entry)
        assert "default" in option, "%s: %s has no default: in the %s entry point" % (role, name, entry)
        assert option["default"] == value, "%s: %s default in %s is %r, defaults/main.yml says %r" % (
            role, name, entry, option["default"], value)


@pytest.mark.parametrize("role", ROLES)
def test_no_entry_point_states_another_default(role):
    defaults = _defaults(role)
    for entry, spec in _specs(role).items():
        for name, option in (spec.get("options") or {}).items():
            where = "%s: %s in the %s entry point" % (role, name, entry)
            if name in defaults:
                assert option.get("default", object()) == defaults[name], "%s: default differs from defaults/main.yml" % where
                assert not option.get("required"), "%s: required, but defaults/main.yml gives it a value" % where
            else:
                assert "default" not in option, "%s: has a default: but is not in defaults/main.yml" % where


@pytest.mark.parametrize("role", ROLES)
def test_main_lists_only_the_roles_variables(role):
    """An option of main that is not a default is a required input (or an optional one without a
    value); either way it carries the role's prefix."""
    for name in _specs(role)["main"].get("options") or {}:
        assert name.startswith(role + "_"), "%s: option %s lacks the role prefix" % (role, name)


@pytest.mark.parametrize("role", sorted(ENTRY_POINT_ONLY))
def test_entry_point_only_variables_stay_out_of_main(role):
    main = _specs(role)["main"].get("options") or {}
    for name in ENTRY_POINT_ONLY[role]:
        assert name not in main, "%s: %s would be evaluated by main's validation before it can be" % (role, name)
