"""Each IPVS option is declared once, in plugins/module_utils/_ipvs_spec.py; the modules' argument
specs are generated from it. Their DOCUMENTATION and the director role's meta/argument_specs.yml
are written by hand: here they must agree with the declaration on names, types, choices,
defaults, aliases, elements and required."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
_loader = importlib.util.spec_from_file_location("ipvs_spec", ROOT / "plugins" / "module_utils" / "_ipvs_spec.py")
spec = importlib.util.module_from_spec(_loader)
_loader.loader.exec_module(spec)

KEYS = ("type", "choices", "default", "aliases", "elements", "required")


def shape(options):
    """{name: the KEYS an option gives} of a DOCUMENTATION or argument_specs options mapping
    (or of a declaration); suboptions are compared on their own."""

    def given(option, key):  # "required: false" and "default: null" say nothing (default 0 does)
        return option.get(key) is not None and not (key == "required" and option[key] is False)

    return {name: {k: option[k] for k in KEYS if given(option, k)} for name, option in options.items()}


def declared(*groups, rename=None):
    out = {}
    for group in groups:
        out.update(spec.argument_spec(group, rename))
    return shape(out)


def documented(module):
    source = (ROOT / "plugins" / "modules" / f"{module}.py").read_text()
    return yaml.safe_load(source.split('DOCUMENTATION = r"""', 1)[1].split('"""', 1)[0])["options"]


def role_options(role):
    return yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]


def without(options, *names):
    return {k: v for k, v in options.items() if k not in names}


def test_ipvs_service_documents_the_declaration():
    assert shape(documented("ipvs_service")) == declared(spec.IDENTITY, spec.SERVICE)


def test_ipvs_real_documents_the_declaration():
    prefix = {"address": "service_", "port": "service_"}
    identity = declared(spec.IDENTITY, rename=prefix)
    assert shape(documented("ipvs_real")) == {**identity, **declared(spec.REAL, {"drain_timeout": spec.DRAIN_TIMEOUT})}


def test_ipvs_table_documents_the_declaration():
    options = documented("ipvs_table")
    services = options["services"]["suboptions"]
    # Its service and real server options have no default (merged keeps the kernel's value).
    assert shape(without(services, "reals")) == shape(spec.without_defaults(spec.argument_spec({**spec.IDENTITY, **spec.SERVICE})))
    assert shape(services["reals"]["suboptions"]) == shape(spec.without_defaults(spec.argument_spec(spec.REAL)))
    assert shape(options["protected"]["suboptions"]) == declared(spec.PROTECTED)
    assert shape({"drain_timeout": options["drain_timeout"]}) == declared({"drain_timeout": spec.DRAIN_TIMEOUT})


def test_ipvs_sync_daemon_documents_the_declaration():
    assert shape(documented("ipvs_sync_daemon")) == declared(spec.SYNC_DAEMON)


def no_aliases(options):
    return {name: without(option, "aliases") for name, option in options.items()}


def test_director_role_spec_agrees_with_the_declaration():
    options = role_options("director")
    services = options["director_services"]["options"]
    # The role's own default for scheduler is director_default_scheduler, so it gives none here;
    # a role's argument spec has no aliases (its schema refuses them), the module takes them.
    wanted = no_aliases(declared(spec.IDENTITY, spec.SERVICE))
    wanted["scheduler"].pop("default")
    # "check" is the role's own (keepalived's health check), not an IPVS option.
    assert shape(without(without(services, "reals"), "check")) == wanted
    assert shape(services["reals"]["options"]) == no_aliases(declared(spec.REAL))
    assert shape(options["director_table_protected"]["options"]) == declared(spec.PROTECTED)
    assert options["director_default_scheduler"]["choices"] == spec.SCHEDULERS
    assert options["director_drain_timeout"]["default"] == spec.DRAIN_TIMEOUT["default"]
    assert shape(options["director_sync_daemons"]["options"]) == declared(spec.SYNC_DAEMON)
